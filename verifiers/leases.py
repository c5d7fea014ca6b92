"""Machine-wide leases of sandbox uids (host runs as root): each sandbox runs its programs
under a uid no other sandbox on the machine uses at the same time, since cleanup kills every
process of that uid."""

from __future__ import annotations

import fcntl
import os
import stat

from rlvr_gym.verifiers.reaping import kill_uid

_UID_RANGE = 1 << 16


def _lease_dir() -> str:
    """A root-only directory for the uid lock files (checked, so that nobody else can plant
    files or links there)."""
    path = "/run/rlvr-sandbox-uids" if os.access("/run", os.W_OK) else "/tmp/rlvr-sandbox-uids"
    os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o077:
        raise RuntimeError(f"{path} must be a directory owned by root with mode 0700; remove "
                           "it (someone else may have created it) and try again")
    return path


class _UidLease:
    """Exclusive use of one sandbox uid while this object lives, across all processes of the
    machine: an flock on a per-uid file in a root-only directory. Unique uids matter because
    cleanup kills every process of the uid."""

    def __init__(self, base: int) -> None:
        directory = _lease_dir()
        self._fd: int | None = None
        start = (os.getpid() * 64) % _UID_RANGE
        for k in range(_UID_RANGE):
            uid = base + (start + k) % _UID_RANGE
            fd = os.open(os.path.join(directory, str(uid)),
                         os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.uid, self._fd = uid, fd
            kill_uid(uid)  # whatever a crashed previous holder left running
            return
        raise RuntimeError(f"all {_UID_RANGE} sandbox uids from {base} are in use")

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None
