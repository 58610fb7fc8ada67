#!/bin/sh
# The node base image's entrypoint, as the official one behaves: a first
# argument that is an option ("-e ...") or not a command on PATH (a script
# file) runs under node; anything else runs as it is. `exec` keeps the
# command as PID 1, so it receives the container's signals itself.
set -e

if [ "${1#-}" != "$1" ] || [ -z "$(command -v "$1")" ] || { [ -f "$1" ] && ! [ -x "$1" ]; }; then
  set -- node "$@"
fi

exec "$@"
