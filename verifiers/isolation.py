"""Kernel isolation for the code sandbox: which tools the host has, the filesystem view a
sandboxed program gets, and the refusal when the layers the sandbox promises are missing.

The filesystem view holds only what the interpreter needs to run its standard library: the
interpreter binary, its standard-library directories (minus any site-packages inside them),
the system library directory with the C library, the loader cache and the symlinks on the
way to them. Not /usr wholesale, no installed packages (unless asked for), no project files,
no datasets, no home directories, no host /tmp, /run or /dev/shm. bubblewrap builds it from
`bwrap_args`; without bubblewrap the sandbox runner builds the same view itself inside new
mount/PID/IPC namespaces (util-linux `unshare`, see `_sandbox_runner._enter_view`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

logger = logging.getLogger("rlvr_gym.verifiers.sandbox")

#: Set to 1 to make the sandbox behave as if bubblewrap were not installed (CI runs the hostile
#: tests both ways on one machine).
NO_BWRAP_ENV = "RLVR_SANDBOX_NO_BWRAP"

#: How to get the missing layers, named in every refusal.
HOW_TO_ISOLATE = (
    "install bubblewrap (apt-get install bubblewrap, or dnf install bubblewrap) or allow "
    "unprivileged user namespaces (sysctl -w kernel.unprivileged_userns_clone=1 on Debian "
    "kernels that have it; sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 on "
    "Ubuntu 23.10+; sysctl -w user.max_user_namespaces=15000 elsewhere) and install "
    "util-linux (unshare, setpriv)")


class SandboxUnavailable(RuntimeError):
    """The layers the sandbox's guarantees need cannot be had on this host."""


def find_tools() -> dict[str, str | None]:
    """Absolute paths of bwrap, unshare and setpriv (None where absent; bwrap also None when
    $RLVR_SANDBOX_NO_BWRAP is set to anything but '' or '0')."""
    tools = {name: shutil.which(name) for name in ("bwrap", "unshare", "setpriv")}
    if os.environ.get(NO_BWRAP_ENV, "") not in ("", "0"):
        tools["bwrap"] = None
    return tools


@dataclass(frozen=True)
class Interpreter:
    """What the sandbox needs to know about the interpreter it runs."""

    cache_tag: str
    """`sys.implementation.cache_tag`: same as the host's means compiled code can be sent."""
    executable: str
    """The interpreter binary (real path)."""
    stdlib: tuple[str, ...]
    """Directories on its `sys.path` under `-I -S`: the standard library."""
    site: tuple[str, ...]
    """Its site-packages directories (existing ones)."""
    libraries: tuple[str, ...]
    """Shared objects it maps at start (real paths)."""


_PROBE = """
import json, os, site, sys
libs = set()
for line in open('/proc/self/maps'):
    parts = line.split(None, 5)
    if len(parts) == 6 and '.so' in os.path.basename(parts[5].strip()):
        libs.add(parts[5].strip())
sites = list(site.getsitepackages()) + [site.getusersitepackages()]
print(json.dumps({'tag': sys.implementation.cache_tag,
                  'exe': os.path.realpath(sys.executable),
                  'path': [p for p in sys.path if p and os.path.isdir(p)],
                  'site': [p for p in sites if os.path.isdir(p)], 'libs': sorted(libs)}))
"""

_INTERPRETERS: dict[str, Interpreter] = {}


def interpreter(python: str, path_env: str) -> Interpreter:
    """Facts about `python`, asked once per interpreter (ValueError when it does not run)."""
    if python not in _INTERPRETERS:
        try:
            out = subprocess.run([python, "-I", "-S", "-c", _PROBE], capture_output=True,
                                 text=True, timeout=30, env={"PATH": path_env}).stdout
            facts = json.loads(out)
        except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
            raise ValueError(f"the sandbox interpreter {python} does not run ({exc}); set "
                             "SandboxConfig.python to a working python3") from exc
        real = os.path.realpath
        _INTERPRETERS[python] = Interpreter(
            facts["tag"], real(facts["exe"]), tuple(real(p) for p in facts["path"]),
            tuple(real(p) for p in facts["site"]), tuple(real(p) for p in facts["libs"]))
    return _INTERPRETERS[python]


@dataclass(frozen=True)
class View:
    """The read-only part of a sandbox's filesystem (host paths shown at the same place)."""

    binds: tuple[str, ...]
    """Files and directories bound read-only (disjoint: none lies inside another)."""
    hidden: tuple[str, ...]
    """Directories inside `binds` covered by an empty read-only directory."""
    symlinks: tuple[tuple[str, str], ...]
    """(target, link): the host's symlinks on the way to the binds (e.g. /lib64 -> usr/lib64,
    /usr/bin/python3 -> python3.11), so that paths compiled into binaries resolve."""


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _symlinks_to(path: str, depth: int = 0) -> list[tuple[str, str]]:
    """The symlinks met while resolving `path`, as (target, link)."""
    found: list[tuple[str, str]] = []
    current = "/"
    for part in [p for p in path.split("/") if p]:
        step = os.path.join(current, part)
        if os.path.islink(step) and depth < 40:
            target = os.readlink(step)
            found.append((target, step))
            found += _symlinks_to(os.path.normpath(os.path.join(current, target)), depth + 1)
            current = os.path.realpath(step)
        else:
            current = step
    return found


def _elf_interpreter(executable: str) -> str | None:
    """The loader path compiled into an ELF binary (PT_INTERP), or None."""
    try:
        with open(executable, "rb") as f:
            head = f.read(65536)
    except OSError:
        return None
    if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only; 32-bit hosts get no exec
        return None
    end = "<" if head[5] == 1 else ">"
    phoff, = struct.unpack_from(end + "Q", head, 0x20)
    phentsize, phnum = struct.unpack_from(end + "HH", head, 0x36)
    for i in range(phnum):
        at = phoff + i * phentsize
        if at + 56 > len(head):
            return None
        kind, = struct.unpack_from(end + "I", head, at)
        if kind == 3:  # PT_INTERP
            offset, = struct.unpack_from(end + "Q", head, at + 8)
            size, = struct.unpack_from(end + "Q", head, at + 32)
            return head[offset:offset + size].rstrip(b"\0").decode(errors="replace")
    return None


def view_for(interp: Interpreter, command_path: str, site_packages: bool) -> View:
    """The view for running `interp` (started as `command_path`): see the module docstring.
    With `site_packages` its site-packages directories are shown too (and whatever is
    installed there, this package included when it is installed non-editable)."""
    real = os.path.realpath
    libc = [lib for lib in interp.libraries if os.path.basename(lib).startswith("libc.so")]
    dirs = []
    for lib_dir in {os.path.dirname(lib) for lib in libc}:
        # Merged /usr or not: the multiarch directory may exist under /lib and /usr/lib.
        tail = lib_dir.split("/lib/", 1)[1] if "/lib/" in lib_dir else ""
        dirs += [lib_dir] + [real(f"{top}/lib/{tail}") for top in ("", "/usr") if tail]
    dirs += list(interp.stdlib)
    if site_packages:
        dirs += list(interp.site)
    binds: list[str] = []
    for path in sorted({d for d in dirs if os.path.isdir(d)}, key=len):
        if not any(_inside(path, b) for b in binds):
            binds.append(path)
    files = [interp.executable, *interp.libraries, "/etc/ld.so.cache"]
    loader = _elf_interpreter(interp.executable)
    if loader:
        files.append(real(loader))
    for path in files:
        if os.path.isfile(path) and not any(_inside(path, b) for b in binds):
            binds.append(path)
    hidden = tuple(s for s in interp.site if not site_packages
                   and any(_inside(s, b) and s != b for b in binds))
    links = []
    for path in [command_path, *(p for p in [loader] if p)]:
        links += _symlinks_to(path)
    symlinks = tuple(dict.fromkeys(
        (t, link) for t, link in links if not any(_inside(link, b) for b in binds)))
    return View(tuple(binds), hidden, symlinks)


def bwrap_args(view: View) -> list[str]:
    """bubblewrap arguments that build `view` (read-only binds, hidden dirs, symlinks)."""
    args: list[str] = []
    for path in view.binds:
        args += ["--ro-bind", path, path]
    for path in view.hidden:
        args += ["--tmpfs", path, "--remount-ro", path]
    for target, link in view.symlinks:
        args += ["--symlink", target, link]
    return args


_LOGGED: set[tuple[str, tuple[str, ...]]] = set()


def log_layers_once(isolation: str, active: list[str], missing: list[str],
                    optional: Sequence[str] = ()) -> None:
    """Log the layers in force once per process and configuration (missing ones as a
    warning: only an explicit unsafe mode runs without them; missing `optional` ones, which
    the sandbox runs without anyway, as a warning too)."""
    key = (isolation, tuple(active) + tuple(missing) + tuple(optional))
    if key in _LOGGED:
        return
    _LOGGED.add(key)
    logger.info("code sandbox isolation %r, layers in force: %s", isolation, ", ".join(active))
    for line in missing:
        logger.warning("code sandbox (unsafe mode): %s", line)
    for line in optional:
        logger.warning("code sandbox: %s", line)
