"""Every `railway ...` command line in every rendered file, checked against the CLI.

The Railway CLI cannot be installed here, so its parser is replayed from
tests/data/railway/cli-commands.json (v5.43.1, read from the CLI's own clap
definitions): command path and aliases, each flag (name, value, enum
values, repeats, deprecation), positionals, `--`, and, for lines that run
without a terminal (workflow steps and shell scripts), `--yes` where the
command refuses to prompt. The checker is first tested on a table of known
verdicts (tests/data/railway/cli-verdicts.json), so it is known to accept
and reject what the CLI does.

Where lines are found, in each distinct rendered file: shell scripts and the
`run:` blocks of workflows (as commands), fenced shell blocks of Markdown
(as commands typed at a terminal), and `inline code` spans starting with
`railway ` in any file. Prose that merely names Railway is not a command.
DEPLOYMENT.md is written by another part of the template; its lines are
checked the same way.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

import linters

DATA = Path(__file__).resolve().parent / "data" / "railway"
SEPARATORS = {";", "&&", "||", "|", "(", ")", "&", "{", "}", "then", "do", "else", "!", "`"}
WRAPPERS = {"exec", "sudo", "time", "nohup"}
REDIRECT = re.compile(r"\d*(?:>>|>|<)(?P<target>&?\S+)?")
YES_EXEMPT_WITH = {"config apply": {"--json"}}


@cache
def cli() -> dict[str, Any]:
    return json.loads((DATA / "cli-commands.json").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Found:
    line: str
    interactive: bool
    where: str
    reference: bool = False


# ----------------------------------------------------------------- checker --
def _lookup(commands: dict[str, Any], word: str, top: bool) -> tuple[str, dict[str, Any]] | None:
    if word in commands:
        return word, commands[word]
    for name, spec in commands.items():
        if word in spec.get("aliases", []) or word in spec.get("hidden_aliases", []):
            return name, spec
    if top and word in cli()["top_level_aliases"]:
        name = cli()["top_level_aliases"][word]
        if name in commands:
            return name, commands[name]
    return None


def _flag(spec: dict[str, Any], word: str) -> tuple[str, dict[str, Any]] | None:
    for name, flag in spec.get("flags", {}).items():
        if word == name or word == flag.get("short") or word in flag.get("aliases", []):
            return name, flag
    return None


def check(words: list[str], interactive: bool, reference: bool = False) -> list[str]:
    """Problems of one command line (words after shell splitting, starting at `railway`).

    A reference (an inline code span naming a command in prose, such as
    `railway variables set`) may leave out required arguments.
    """
    assert words[0] == "railway"
    problems: list[str] = []
    path: list[str] = []
    spec: dict[str, Any] = {"subcommands": cli()["commands"], "flags": {}, "positionals": []}
    used: list[str] = []
    positionals: list[str] = []
    rest = words[1:]
    only_positional = False
    while rest:
        word = rest.pop(0)
        if only_positional:
            positionals.append(word)
            continue
        if word == "--":
            only_positional = True
            continue
        if word in ("-h", "--help", "-V", "--version"):
            return problems
        if word.startswith("-") and len(word) > 1:
            name, _, value = (
                word.partition("=") if word.startswith("--") else (word[:2], "", word[2:])
            )
            found = _flag(spec, name)
            if found is None:
                problems.append(f"`{' '.join(['railway', *path])}` has no flag {name}")
                continue
            long_name, flag = found
            if flag.get("deprecated"):
                problems.append(f"{long_name} is deprecated")
            if long_name in used and not flag.get("repeatable"):
                problems.append(f"{long_name} given twice")
            used.append(long_name)
            if flag.get("takes_value"):
                if not value:
                    if rest and not (flag.get("value_optional") and rest[0].startswith("-")):
                        value = rest.pop(0)
                    elif not flag.get("value_optional"):
                        problems.append(f"{long_name} needs a value")
                possible = [str(p).lower() for p in flag.get("possible_values") or []]
                if (
                    value
                    and possible
                    and not value.startswith("$")
                    and value.lower() not in possible
                ):
                    problems.append(f"{long_name} {value}: not one of {possible}")
            elif value:
                problems.append(f"{long_name} takes no value")
            continue
        # A subcommand, when nothing positional was given yet.
        subcommands = spec.get("subcommands") or {}
        if not positionals and subcommands:
            match = _lookup(subcommands, word, top=not path)
            if match is not None:
                path.append(match[0])
                spec = match[1]
                used = []
                continue
            if word == "help" and path:
                return problems
            if not spec.get("positionals"):
                problems.append(
                    f"`railway {' '.join(path)}` has no subcommand {word}".replace("  ", " ")
                )
                return problems
        positionals.append(word)
        if any(p.get("trailing_var_arg") for p in spec.get("positionals", [])):
            positionals.extend(rest)
            rest = []
    if not path:
        return ["`railway` alone is not a command"]
    allowed = spec.get("positionals", [])
    variadic = any(p.get("variadic") for p in allowed)
    if not variadic and len(positionals) > len(allowed):
        problems.append(
            f"`railway {' '.join(path)}` takes {len(allowed)} positional(s), got {positionals}"
        )
    required = [p for p in allowed if p.get("required")]
    if reference:
        return problems
    if len(positionals) < len(required):
        problems.append(f"`railway {' '.join(path)}` needs {[p['value_name'] for p in required]}")
    if spec.get("subcommand_required") and not positionals:
        problems.append(f"`railway {' '.join(path)}` needs a subcommand")
    for group in spec.get("arg_groups", []):
        members = [m for m in group["members"] if m in used]
        if group.get("at_most_one") and len(members) > 1:
            problems.append(f"at most one of {group['members']}")
    command = " ".join(path)
    exempt = YES_EXEMPT_WITH.get(command, set()) & set(used)
    if not interactive and spec.get("needs_yes_off_tty") and "--yes" not in used and not exempt:
        problems.append(f"`railway {command}` needs --yes when it runs without a terminal")
    return problems


# --------------------------------------------------------------- extraction --
def _words(text: str) -> list[str] | None:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()`")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError:
        return None


def commands_in_shell(text: str) -> list[list[str]]:
    """`railway` invocations of a shell text, one word list each."""
    found = []
    text = text.replace("\\\n", " ")
    for raw in text.splitlines():
        # Command substitutions inside quotes are one word to the shell
        # lexer: look into them separately.
        for inner in re.findall(r"\$\((railway[^()]*)\)", raw):
            found.extend(commands_in_shell(inner))
        line = raw.strip()
        if line.startswith("$ "):
            line = line[2:]
        words = _words(line)
        if not words:
            continue
        at_start = True
        index = 0
        while index < len(words):
            word = words[index]
            if word in SEPARATORS or word.startswith("$("):
                at_start = True
            elif at_start and (
                re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", word) or word in WRAPPERS
            ):
                pass
            elif at_start and word == "uv" and words[index + 1 : index + 2] == ["run"]:
                index += 1
                while index + 1 < len(words) and words[index + 1].startswith("-"):
                    index += 1
            elif at_start and word == "railway":
                end = index + 1
                command = [word]
                while end < len(words) and words[end] not in SEPARATORS:
                    # Redirections belong to the shell, not to the command:
                    # `> FILE`, `2>/dev/null`, `2>&1`.
                    redirect = REDIRECT.fullmatch(words[end])
                    if redirect:
                        end += 1 if redirect["target"] else 2
                        continue
                    command.append(words[end])
                    end += 1
                found.append(command)
                index = end
                continue
            else:
                at_start = False
            index += 1
    return found


def inline_spans(text: str) -> list[str]:
    """`railway ...` code spans; `plan|apply` shorthand gives one span per choice."""
    spans = []
    for span in re.findall(r"`([^`\n]+)`", text):
        if not span.startswith("railway "):
            continue
        choice = re.search(r"(\w[\w-]*)\|(\w[\w-]*)", span)
        if choice:
            spans.append(span[: choice.start()] + choice[1] + span[choice.end() :])
            spans.append(span[: choice.start()] + choice[2] + span[choice.end() :])
        else:
            spans.append(span)
    return spans


def found_in(relpath: str, path: Path) -> list[Found]:
    text = path.read_text(encoding="utf-8", errors="replace")
    lines: list[Found] = []

    def add(words_list: list[list[str]], interactive: bool) -> None:
        for words in words_list:
            lines.append(Found(shlex.join(words), interactive, relpath))

    if relpath.endswith(".md"):
        for block in re.findall(
            r"^\s*```(?:bash|sh|shell|console)?\s*\n(.*?)^\s*```", text, re.M | re.S
        ):
            add(commands_in_shell(block), interactive=True)
    elif linters.is_shell(relpath, path):
        add(commands_in_shell(text), interactive=False)
    elif relpath.startswith(".github/workflows/"):
        data = yaml.safe_load(text)
        for job in (data.get("jobs") or {}).values():
            for step in job.get("steps", []):
                if "run" in step:
                    add(commands_in_shell(step["run"]), interactive=False)
    for span in inline_spans(text):
        words = _words(span)
        if words and words[0] == "railway":
            lines.append(Found(shlex.join(words), True, relpath, reference=True))
    return lines


# -------------------------------------------------------------------- tests --
def verdict_table() -> list[tuple[str, bool]]:
    data = json.loads((DATA / "cli-verdicts.json").read_text(encoding="utf-8"))
    return [(row["line"], row["valid"]) for row in data["verdicts"]]


@pytest.mark.parametrize(("line", "valid"), verdict_table())
def test_checker_agrees_with_the_cli(line: str, valid: bool) -> None:
    problems = check(shlex.split(line), interactive=True)
    assert (not problems) == valid, problems


@pytest.mark.parametrize(
    ("line", "interactive", "valid"),
    [
        ("railway redeploy --service bot", False, False),
        ("railway redeploy --service bot", True, True),
        ("railway config apply --yes", False, True),
        ("railway logs --lines 50 --service bot", False, True),
        ("railway deployment list --service bot --limit 1 --json", False, True),
        ("railway ssh --service bot -- python3 -c 'print(1)'", False, True),
        ("railway volume --service bot files upload a /b", True, True),
        ("railway up --ci --service", False, False),
        ("railway logs --follow", True, False),
    ],
)
def test_checker_cases(line: str, interactive: bool, valid: bool) -> None:
    assert (not check(shlex.split(line), interactive)) == valid


def test_extraction() -> None:
    script = (
        'x="$(railway deployment list --limit 1)"\n'
        "uv run --no-sync railway config plan\n"
        "command -v railway\n"
        'railway config plan --json > "$RUNNER_TEMP/plan.json"\n'
        "railway config plan --detailed-exit-code 2>/dev/null >/dev/null\n"
    )
    assert [w[:3] for w in commands_in_shell(script)] == [
        ["railway", "deployment", "list"],
        ["railway", "config", "plan"],
        ["railway", "config", "plan"],
        ["railway", "config", "plan"],
    ]
    assert commands_in_shell(script)[2] == ["railway", "config", "plan", "--json"]
    assert commands_in_shell(script)[3] == ["railway", "config", "plan", "--detailed-exit-code"]


def test_every_railway_line_is_valid(matrix_files: list[linters.DistinctFile]) -> None:
    found: dict[tuple[str, bool, bool], set[str]] = {}
    for distinct in matrix_files:
        for line in found_in(distinct.relpath, distinct.path):
            found.setdefault((line.line, line.interactive, line.reference), set()).add(line.where)
    assert found, "no railway command lines found at all"
    report = []
    for (line, interactive, reference), where in sorted(found.items()):
        problems = check(shlex.split(line), interactive, reference)
        if problems:
            report.append(f"{line}\n    in {', '.join(sorted(where))}: {'; '.join(problems)}")
    assert not report, f"{len(report)} invalid railway command lines:\n" + "\n".join(report)
