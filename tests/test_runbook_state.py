"""DEPLOYMENT.md followed literally, against a model of the Railway CLI's state.

The Railway CLI links a directory to a project, an environment and a service,
and most commands act on what is linked unless a flag names something else
(tests/data/railway/cli-state.json, read from the CLI's source). A runbook
that forgets this runs "production" steps in staging. For every rendered
combination this walks the fenced shell blocks of DEPLOYMENT.md in order,
replays each `railway` line on the model, and checks:

- every command acts on an environment it names: its own `--environment`, a
  `RAILWAY_TOKEN=...` prefix that names the environment, or an explicit switch
  (`railway environment NAME`) earlier in the same block. A link left behind
  by an earlier block, or moved as a side effect (`environment new`, `add
  --service`), never counts: following one block must not depend on which
  blocks ran before it;
- every command that acts on a service names it (`--service`), likewise;
- `IAC_ENVIRONMENT` matches the environment a `config plan|apply` acts in;
- `redeploy` never follows `down` (down removes the latest successful
  deployment, and redeploy then has nothing to redeploy);
- at the end each environment has every service, database, volume and
  variable the bot needs, and with backup_path=railway the backup cron
  service (PostgreSQL) and every variable the backup commands need, while
  no service keeps the age identity or a restore key.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from test_railway_commands import _flag, _lookup, cli, commands_in_shell

import matrix
from conftest import RenderedMatrix, combination_params

DATA = Path(__file__).resolve().parent / "data" / "railway"
BLOCK = re.compile(r"^\s*```(?:bash|sh|shell|console)\s*\n(.*?)^\s*```", re.M | re.S)


@cache
def model() -> dict[str, Any]:
    return json.loads((DATA / "cli-state.json").read_text(encoding="utf-8"))


# ------------------------------------------------------------------ parsing --
@dataclass
class Parsed:
    path: str
    flags: dict[str, str | None]
    positionals: list[str]


def parse(words: list[str]) -> Parsed:
    """A `railway ...` line as command path, flags and positionals.

    test_railway_commands checks that the line is valid; this only reads it.
    """
    spec: dict[str, Any] = {"subcommands": cli()["commands"], "flags": {}}
    path: list[str] = []
    flags: dict[str, str | None] = {}
    positionals: list[str] = []
    rest = words[1:]
    while rest:
        word = rest.pop(0)
        if word == "--":
            positionals.extend(rest)
            break
        if word.startswith("-") and len(word) > 1:
            name, _, value = (
                word.partition("=") if word.startswith("--") else (word[:2], "", word[2:])
            )
            found = _flag(spec, name)
            assert found is not None, f"unknown flag {name} in {shlex.join(words)}"
            long_name, flag = found
            if (
                flag.get("takes_value")
                and not value
                and rest
                and not (flag.get("value_optional") and rest[0].startswith("-"))
            ):
                value = rest.pop(0)
            flags[long_name] = value or None
            continue
        subcommands = spec.get("subcommands") or {}
        match = _lookup(subcommands, word, top=not path) if not positionals else None
        if match is not None:
            path.append(match[0])
            spec = match[1]
            continue
        positionals.append(word)
        if any(p.get("trailing_var_arg") for p in spec.get("positionals", [])):
            positionals.extend(rest)
            break
    return Parsed(" ".join(path), flags, positionals)


def assignments(line: str) -> dict[str, str]:
    """`NAME=value` words in front of `railway` on one line (environment prefixes)."""
    words = shlex.split(line, comments=True)
    found = {}
    for word in words:
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", word)
        if not m:
            break
        found[m[1]] = m[2]
    return found


def command_lines(block: str) -> list[tuple[dict[str, str], list[str]]]:
    """(prefix assignments, words) of each `railway` invocation of a block, in order."""
    found = []
    for line in block.replace("\\\n", " ").splitlines():
        for words in commands_in_shell(line):
            found.append((assignments(line.strip()), words))
    return found


# -------------------------------------------------------------------- model --
@dataclass
class Environment:
    services: set[str] = field(default_factory=set)
    databases: set[str] = field(default_factory=set)
    volumes: set[str] = field(default_factory=set)
    variables: dict[str, set[str]] = field(default_factory=dict)
    #: service -> whether it still has a successful deployment (None: unknown,
    #: as after a push; False: `railway down` removed it).
    deployed: dict[str, bool | None] = field(default_factory=dict)
    #: A fork of another environment gets new services alone; every other
    #: environment gets each service created in any of them (cli-state.json,
    #: `service_in`). No runbook command makes a fork.
    fork: bool = False


@dataclass
class Cli:
    expected: Expected
    project: str | None = None
    environment: str | None = None
    service: str | None = None
    environments: dict[str, Environment] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    # Links set by an explicit switch in the current block.
    explicit_environment: str | None = None
    explicit_service: str | None = None

    def start_block(self) -> None:
        self.explicit_environment = None
        self.explicit_service = None

    def run(self, prefix: dict[str, str], words: list[str]) -> None:
        line = shlex.join(words)
        parsed = parse(words)
        spec = model()["commands"].get(parsed.path)
        if spec is None:
            self.problems.append(f"{line}: `railway {parsed.path}` is not in cli-state.json")
            return
        scope = spec.get("scope", [])
        if scope and self.project is None:
            self.problems.append(f"{line}: no project linked yet")
            return
        env_name = self._environment(line, prefix, parsed) if "environment" in scope else None
        service = self._service(line, parsed) if "service" in scope else None
        if "environment" in scope and env_name is None:
            return
        if "service" in scope and service is None:
            return
        env = self.environments.get(env_name) if env_name else None
        if env_name and env is None:
            self.problems.append(f"{line}: environment {env_name} does not exist yet")
            return
        if env is not None and service is not None and service not in env.services | env.databases:
            self.problems.append(f"{line}: {env_name} has no service {service} yet")
            return
        if "IAC_ENVIRONMENT" in prefix and prefix["IAC_ENVIRONMENT"] != env_name:
            self.problems.append(
                f"{line}: IAC_ENVIRONMENT={prefix['IAC_ENVIRONMENT']} while acting in {env_name}"
            )
        self._effects(line, spec, parsed, env_name, env, service)

    def _environment(self, line: str, prefix: dict[str, str], parsed: Parsed) -> str | None:
        if parsed.flags.get("--environment"):
            return parsed.flags["--environment"]
        token = prefix.get("RAILWAY_TOKEN", "")
        for name in self.environments:
            if name.upper() in token.upper():
                return name
        if self.explicit_environment is not None:
            return self.explicit_environment
        self.problems.append(
            f"{line}: acts on the linked environment ({self.environment}), which no flag and no "
            "`railway environment NAME` in this block chose"
        )
        return None

    def _service(self, line: str, parsed: Parsed) -> str | None:
        if parsed.flags.get("--service"):
            return parsed.flags["--service"]
        if self.explicit_service is not None:
            return self.explicit_service
        self.problems.append(
            f"{line}: acts on the linked service ({self.service}), which no --service and no "
            "`railway service NAME` in this block chose"
        )
        return None

    def _copy(self, line: str, spec: dict[str, Any], parsed: Parsed) -> Environment:
        """A new environment: empty, or what `copies` names has (services, databases, ...)."""
        flag = spec.get("copies")
        source = parsed.flags.get(flag) if flag else None
        if source is None:
            return Environment()
        if source not in self.environments:
            self.problems.append(f"{line}: no environment {source} to duplicate")
            return Environment()
        original = self.environments[source]
        return Environment(
            services=set(original.services),
            databases=set(original.databases),
            volumes=set(original.volumes),
            variables={name: set(names) for name, names in original.variables.items()},
            deployed=dict.fromkeys(original.services),
        )

    def _value(self, source: str, parsed: Parsed) -> str | None:
        if source == "positional":
            return parsed.positionals[0] if parsed.positionals else None
        if source.startswith("--"):
            return parsed.flags.get(source)
        return source

    def _effects(
        self,
        line: str,
        spec: dict[str, Any],
        parsed: Parsed,
        env_name: str | None,
        env: Environment | None,
        service: str | None,
    ) -> None:
        for created in spec.get("creates", []):
            kind, _, source = created.partition(":")
            if kind == "project":
                self.project = "created"
            elif kind == "environment":
                name = self._value(source, parsed)
                assert name, f"{line}: no environment name"
                if name in self.environments:
                    self.problems.append(f"{line}: environment {name} exists already")
                self.environments[name] = self._copy(line, spec, parsed)
            elif kind == "service" and source in parsed.flags:
                name = self._value(source, parsed)
                assert env is not None and env_name and name, f"{line}: a service needs a name here"
                targets = {env_name: env}
                if spec.get("service_in") == "every-environment-not-a-fork" and not env.fork:
                    targets = {n: e for n, e in self.environments.items() if not e.fork}
                for target_name, target in targets.items():
                    if name in target.services:
                        self.problems.append(
                            f"{line}: {target_name} has a service {name} already, and Railway "
                            "creates a new service in every environment that is not a fork "
                            "(ServiceCreateInput.environmentId): this makes a second one"
                        )
                    target.services.add(name)
                    target.variables.setdefault(name, set())
            elif kind == "database" and source in parsed.flags:
                db = model()["database_service_names"][parsed.flags[source] or ""]
                assert env is not None
                env.databases.add(db)
            elif kind == "volume":
                assert env is not None and service is not None
                env.volumes.add(service)
            elif kind == "declared":
                assert env is not None and env_name is not None
                self.expected.declare(env_name, env)
        if spec.get("sets") == "positional":
            assert env is not None and service is not None
            names = {word.partition("=")[0] for word in parsed.positionals}
            env.variables.setdefault(service, set()).update(names)
        if spec.get("deletes") == "positional":
            assert env is not None and service is not None
            for name in parsed.positionals:
                if name not in env.variables.get(service, set()):
                    self.problems.append(f"{line}: {service} has no variable {name} to delete")
                env.variables.get(service, set()).discard(name)
        if "deploys" in spec:
            assert env is not None and service is not None
            kind = spec["deploys"]
            if "--from-source" in parsed.flags and "deploys_with_from_source" in spec:
                kind = spec["deploys_with_from_source"]
            if kind == "latest-successful" and env.deployed.get(service) is False:
                self.problems.append(
                    f"{line}: `railway down` removed the latest successful deployment, so there "
                    "is nothing to redeploy (use `railway up --ci` or `redeploy --from-source`)"
                )
            env.deployed[service] = None
        if spec.get("removes") == "latest-successful":
            assert env is not None and service is not None
            env.deployed[service] = False
        links = spec.get("links", {})
        explicit = spec.get("explicit", False)
        for what, source in links.items():
            value = self._value(source, parsed) if source is not None else None
            if source is not None and source.startswith("--") and source not in parsed.flags:
                continue
            if what == "project":
                self.project = value
            elif what == "environment":
                if value is not None and value not in self.environments:
                    self.problems.append(f"{line}: environment {value} does not exist")
                self.environment = value
                self.explicit_environment = value if explicit else None
            elif what == "service":
                self.service = value
                self.explicit_service = value if explicit else None


# ------------------------------------------------------------- expectations --
@dataclass
class Expected:
    """What the bot needs in each environment, from the answers alone."""

    answers: dict[str, Any]

    @property
    def slug(self) -> str:
        return str(self.answers["project_slug"])

    def environments(self) -> list[str]:
        return ["production", "staging"] if self.answers["staging"] else ["production"]

    def databases(self) -> set[str]:
        names = model()["database_service_names"]
        found = set()
        if self.answers["database"] == "postgres":
            found.add(names["postgres"])
        if self.answers["redis"]:
            found.add(names["redis"])
        return found

    def volumes(self) -> set[str]:
        return {self.slug} if self.answers["database"] == "sqlite" else set()

    def variables(self) -> set[str]:
        found = {"DISCORD_TOKEN", "LOG_LEVEL"}
        if self.answers["database"] == "postgres":
            found.add("DATABASE_URL")
        if self.answers["redis"]:
            found.add("REDIS_URL")
        if self.answers["database"] == "sqlite" and self.answers["builder"] == "dockerfile":
            found.add("RAILWAY_RUN_UID")
        return found

    def secrets(self) -> set[str]:
        return {"DISCORD_TOKEN"}

    # ------------------------------------------- private backups (railway) --
    @property
    def private_backups(self) -> bool:
        a = self.answers
        return (
            a["database"] != "none"
            and bool(a.get("backups"))
            and (a.get("backup_path") == "railway")
        )

    @property
    def backup_service(self) -> str | None:
        """The cron service that dumps PostgreSQL, or None."""
        if self.private_backups and self.answers["database"] == "postgres":
            return f"{self.slug}-backup"
        return None

    def backup_variables(self) -> set[str]:
        """What the backup commands need set, on the service that runs them."""
        if not self.private_backups:
            return set()
        found = self.backup_secrets() | {
            "BACKUP_RETENTION_DAYS",
            "BACKUP_KEEP_MIN",
            "BACKUP_MAX_AGE_HOURS",
        }
        if self.answers["database"] == "sqlite":
            found.add("BACKUP_INTERVAL_HOURS")
        return found

    def backup_secrets(self) -> set[str]:
        if not self.private_backups:
            return set()
        found = {
            "BACKUP_S3_ENDPOINT",
            "BACKUP_S3_BUCKET",
            "BACKUP_S3_ACCESS_KEY_ID",
            "BACKUP_S3_SECRET_ACCESS_KEY",
            "BACKUP_AGE_RECIPIENTS",
        }
        if self.answers["database"] == "postgres":
            found.add("BACKUP_DATABASE_URL")
        return found

    def declare(self, env_name: str, env: Environment) -> None:
        """`railway config apply`: everything .railway/railway.py declares, secrets excepted."""
        env.services.add(self.slug)
        env.databases |= self.databases()
        env.volumes |= self.volumes()
        env.variables.setdefault(self.slug, set()).update(self.variables() - self.secrets())
        if self.backup_service:
            env.services.add(self.backup_service)
            env.variables.setdefault(self.backup_service, set()).update(
                self.backup_variables() - self.backup_secrets()
            )
        elif self.private_backups:
            env.variables[self.slug] |= self.backup_variables() - self.backup_secrets()


def walk(markdown: str, answers: dict[str, Any]) -> Cli:
    state = Cli(Expected(answers))
    for block in BLOCK.findall(markdown):
        state.start_block()
        for prefix, words in command_lines(block):
            state.run(prefix, words)
    return state


def final_problems(state: Cli) -> list[str]:
    expected = state.expected
    problems = list(state.problems)
    for name in expected.environments():
        env = state.environments.get(name)
        if env is None:
            problems.append(f"environment {name} is never created")
            continue
        if expected.slug not in env.services:
            problems.append(f"{name}: no service {expected.slug}")
        if missing := expected.databases() - env.databases:
            problems.append(f"{name}: no database {sorted(missing)}")
        if missing := expected.volumes() - env.volumes:
            problems.append(f"{name}: no volume on {sorted(missing)}")
        if missing := expected.variables() - env.variables.get(expected.slug, set()):
            problems.append(f"{name}: variables never set: {sorted(missing)}")
        backups = expected.backup_service or expected.slug
        if expected.backup_service and expected.backup_service not in env.services:
            problems.append(f"{name}: no service {expected.backup_service}")
        if missing := expected.backup_variables() - env.variables.get(backups, set()):
            problems.append(f"{name}: {backups}: backup variables never set: {sorted(missing)}")
        # The identity that decrypts every backup, and a one-off restore key,
        # never stay on a Railway service.
        for service, names in env.variables.items():
            if left := names & {"BACKUP_AGE_IDENTITY", "BACKUP_RESTORE_KEY"}:
                problems.append(f"{name}: {service} keeps {sorted(left)}")
    return problems


# -------------------------------------------------------------------- tests --
GOOD = """\
```bash
railway login
railway init --name bot
```

```bash
railway environment production
railway add --service bot
railway add --database postgres
railway environment new staging --duplicate production
```

```bash
railway variables set --service bot --environment production "DISCORD_TOKEN=$T" \\
  'LOG_LEVEL=INFO' 'DATABASE_URL=x'
railway variables set --service bot --environment staging "DISCORD_TOKEN=$T" \\
  'LOG_LEVEL=DEBUG' 'DATABASE_URL=x'
```
"""
ANSWERS = {
    "project_slug": "bot",
    "staging": True,
    "database": "postgres",
    "redis": False,
    "builder": "dockerfile",
}


def test_the_walk_accepts_a_correct_runbook() -> None:
    assert final_problems(walk(GOOD, ANSWERS)) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        # The finding of issue 9: after `environment new staging`, "production"
        # steps without a switch run in staging.
        (("railway environment production\n", ""), "which no flag"),
        # DISCORD_TOKEN set without --environment: only the linked environment gets it.
        (("--environment staging ", ""), "which no flag"),
        # An empty staging: nothing to set variables on.
        ((" --duplicate production", ""), "staging has no service bot"),
        (
            ("\"DISCORD_TOKEN=$T\" \\\n  'LOG_LEVEL=INFO'", "\\\n  'LOG_LEVEL=INFO'"),
            "production: variables never set: ['DISCORD_TOKEN']",
        ),
        (
            ("railway environment new staging --duplicate production\n", ""),
            "environment staging does not exist",
        ),
        (("--duplicate production", "--duplicate prod"), "no environment prod to duplicate"),
    ],
)
def test_the_walk_catches_a_wrong_runbook(change: tuple[str, str], problem: str) -> None:
    text = GOOD.replace(*change, 1)
    assert text != GOOD
    problems = final_problems(walk(text, ANSWERS))
    assert any(problem in p for p in problems), problems


# The runbook of railway_config=none before issue 24: staging made empty
# first, then `railway add` once per environment. Neither environment is a
# fork, so the bot added in production is created in staging too, and the
# second `add` makes a second one.
PER_ENVIRONMENT = """\
```bash
railway login
railway init --name bot
railway environment new staging
```

```bash
railway environment production
railway add --service bot
railway add --database postgres
railway environment staging
railway add --service bot
railway add --database postgres
```
"""


def test_the_walk_catches_a_service_added_in_each_environment() -> None:
    problems = walk(PER_ENVIRONMENT, ANSWERS).problems
    assert problems == [
        "railway add --service bot: production has a service bot already, and Railway creates a "
        "new service in every environment that is not a fork "
        "(ServiceCreateInput.environmentId): this makes a second one",
        "railway add --service bot: staging has a service bot already, and Railway creates a "
        "new service in every environment that is not a fork "
        "(ServiceCreateInput.environmentId): this makes a second one",
    ]


def test_the_walk_catches_redeploy_after_down() -> None:
    text = GOOD + (
        "\n```bash\nrailway down --service bot --environment production --yes\n"
        "railway redeploy --service bot --environment production --yes\n```\n"
    )
    assert any("nothing to redeploy" in p for p in final_problems(walk(text, ANSWERS)))
    fixed = text.replace(
        "redeploy --service bot --environment production --yes",
        "up --ci --service bot --environment production",
    )
    assert final_problems(walk(fixed, ANSWERS)) == []


def test_the_walk_wants_the_backup_service_and_no_identity_left_behind() -> None:
    answers = {**ANSWERS, "staging": False, "backups": True, "backup_path": "railway"}
    text = GOOD.split("railway environment new staging")[0] + "```\n"
    text += (
        "\n```bash\nrailway variables set --service bot --environment production "
        "\"DISCORD_TOKEN=$T\" 'LOG_LEVEL=INFO' 'DATABASE_URL=x'\n```\n"
    )
    problems = final_problems(walk(text, answers))
    assert "production: no service bot-backup" in problems
    secrets = (
        "BACKUP_S3_ENDPOINT=e BACKUP_S3_BUCKET=b BACKUP_S3_ACCESS_KEY_ID=i "
        "BACKUP_S3_SECRET_ACCESS_KEY=s BACKUP_AGE_RECIPIENTS=r BACKUP_DATABASE_URL=u"
    )
    text += (
        "\n```bash\nrailway environment production\nrailway add --service bot-backup\n"
        f"railway variables set --service bot-backup --environment production {secrets} "
        "BACKUP_RETENTION_DAYS=30 BACKUP_KEEP_MIN=7 BACKUP_MAX_AGE_HOURS=26 "
        "BACKUP_AGE_IDENTITY=x\n```\n"
    )
    assert final_problems(walk(text, answers)) == [
        "production: bot-backup keeps ['BACKUP_AGE_IDENTITY']"
    ]
    text += (
        "\n```bash\nrailway variables delete --service bot-backup --environment production "
        "BACKUP_AGE_IDENTITY\n```\n"
    )
    assert final_problems(walk(text, answers)) == []


def test_the_walk_follows_the_iac_environment() -> None:
    text = GOOD.split("```bash\nrailway environment production")[0] + (
        "```bash\nrailway environment production\n"
        "IAC_ENVIRONMENT=staging railway config apply\n```\n"
    )
    assert any(
        "IAC_ENVIRONMENT=staging while acting in production" in p
        for p in walk(text, ANSWERS).problems
    )


def test_the_model_knows_every_command_it_names() -> None:
    for path, entry in model()["commands"].items():
        spec: dict[str, Any] = {"subcommands": cli()["commands"]}
        flags: set[str] = set()
        for index, word in enumerate(path.split()):
            found = _lookup(spec.get("subcommands") or {}, word, top=index == 0)
            assert found is not None, f"cli-state.json names `railway {path}`, which the CLI lacks"
            spec = found[1]
            flags |= set(spec.get("flags", {}))
        # Where the model says a command picks its environment or service, the
        # flag that overrides the link exists (on it or on a parent command),
        # except where the CLI has none and the runbook must switch instead.
        no_flag = {"add", "config plan", "config apply"}
        if "environment" in entry.get("scope", []) and path not in no_flag:
            assert "--environment" in flags, f"`railway {path}` has no --environment"
        if "environment" in entry.get("scope", []) and path in no_flag:
            assert "--environment" not in flags, f"`railway {path}` has --environment now"
        if "service" in entry.get("scope", []):
            assert "--service" in flags, f"`railway {path}` has no --service"


@pytest.mark.parametrize("combo", combination_params())
def test_deployment_md_walks_cleanly(
    rendered_matrix: RenderedMatrix, combo: matrix.Combination
) -> None:
    tree = rendered_matrix.tree(combo)
    answers = {**combo.answers, "project_slug": _slug(tree)}
    state = walk((tree / "DEPLOYMENT.md").read_text(encoding="utf-8"), answers)
    problems = final_problems(state)
    assert not problems, "\n".join(problems)


def _slug(tree: Path) -> str:
    answers = (tree / ".copier-answers.yml").read_text(encoding="utf-8")
    m = re.search(r"^project_slug: (\S+)$", answers, re.M)
    assert m, "no project_slug in the answers file"
    return m[1]
