"""Allow ``python -m`` on the package: the Docker image and Railway start it this way."""

from .cli import main

main()
