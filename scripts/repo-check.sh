#!/usr/bin/env bash
# Repository hygiene, the first check of `make test`: fails when a tracked file is a built binary (ELF), or is over
# 1 MB and is not an image under docs/. Every offending file is printed. Git keeps whatever is committed forever,
# so this stops it before the commit reaches main; a large image for the docs is the one accepted exception.
#
# It looks at every file git tracks, including ones staged but not yet committed (git ls-files), as they are in the
# working tree.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# Bytes, not characters, for the magic number below.
export LC_ALL=C
# Without a repository there is nothing to check, which must not read as a pass.
git rev-parse --git-dir >/dev/null

limit=$((1024 * 1024))
elf=$'\x7fELF'
offending=()
while IFS= read -r -d '' path; do
  # Symlinks (their target is checked in its own right), and files deleted but not yet staged.
  [ -f "$path" ] && [ ! -L "$path" ] || continue
  magic=""
  # The first four bytes; read stops early at a NUL byte, which the ELF magic does not contain.
  IFS= read -r -d '' -n 4 magic <"$path" || true
  if [ "$magic" = "$elf" ]; then
    offending+=("$path: an ELF binary (build output belongs in bin/, which is ignored)")
    continue
  fi
  size=$(wc -c <"$path")
  size=${size//[[:space:]]/}
  if [ "$size" -gt "$limit" ]; then
    case "$path" in
      docs/*.png | docs/*.jpg | docs/*.jpeg | docs/*.gif | docs/*.webp | docs/*.svg) ;;
      *) offending+=("$path: $size bytes, over the 1 MB limit for anything but an image under docs/") ;;
    esac
  fi
done < <(git ls-files -z)

if [ ${#offending[@]} -gt 0 ]; then
  echo "repo-check: tracked files that do not belong in the repository:" >&2
  printf '  %s\n' "${offending[@]}" >&2
  echo "remove them (git rm --cached <file>) and commit; built binaries are ignored by .gitignore" >&2
  exit 1
fi
echo "repo-check: no binaries, no file over 1 MB outside docs/ images ($(git ls-files | wc -l | tr -d ' ') files)"
