"""A student worker's private view of the file system: only the paths it needs exist in it.

``enter_view`` runs in the freshly forked worker (``Confinement.apply``), before any student
code.  It enters a new mount namespace (as root; without root, a new user namespace too, which
maps the caller's own user and group ids), builds a new root on an empty tmpfs holding

- read-only recursive binds of the system folders (``/usr``, ``/etc``, ``/lib`` ... and ``/sys``),
- read-only binds of what the plan names as read: the interpreter's prefix, the virtual
  environment, the worker runtime, the model store, checkpoint files,
- a writable bind of the worker's scratch folder, an empty ``/tmp`` and ``/dev/shm``, a few
  device nodes, and ``/proc`` (a new instance that hides other users' processes where the
  kernel allows it),
- empty tmpfs covers over the plan's ``cover`` paths (the harness tree, the grading run's
  folder) wherever a bind above would show them,

then pivots into it and detaches the old root, so nothing else of the machine is reachable,
not even through ``..`` from a descriptor.  Paths are the same inside as outside (``sys.path``,
the venv's absolute paths, the scratch folder), so nothing else changes.

Any failure raises ``OSError``: a worker whose view could not be built must not run student
code.  The plan is plain data (``autograder.sandbox.view`` writes it in the harness).
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 32, 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME, MS_STRICTATIME = 1 << 18, 1 << 21, 1 << 24
MNT_DETACH = 2
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/sys")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
OLD_ROOT = ".old-root"
SCRATCH_TMPFS = "mode=1777,size=16m,nr_inodes=4096"   # /tmp and /dev/shm: memory, so kept small
_ST_TO_MS = ((os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
             (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME), (os.ST_RELATIME, MS_RELATIME))
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
           f"mount {source or fstype or ''} on {target}")


def _read_only(target: str, extra: int = 0) -> None:
    """Remount a bind read-only, keeping the flags it has (a user namespace may not drop them)."""
    kept = os.statvfs(target).f_flag
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY | extra
    for st, ms in _ST_TO_MS:
        if kept & st:
            flags |= ms
    _mount(None, target, None, flags)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _unshare(user_namespace: bool) -> None:
    if not user_namespace:
        _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        return
    uid, gid = os.getuid(), os.getgid()
    _check(_libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare(CLONE_NEWUSER | CLONE_NEWNS)")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1\n")
    _write("/proc/self/gid_map", f"{gid} {gid} 1\n")


def _place(root: str, path: str, like: str) -> str:
    """The view's mount point for ``path``: an empty folder or file, as ``like`` is."""
    target = root + path
    if os.path.isdir(like):
        os.makedirs(target, mode=0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if not os.path.lexists(target):
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    return target


def _bind(root: str, path: str, recursive: bool, writable: bool) -> None:
    target = _place(root, path, path)
    _mount(path, target, None, MS_BIND | (MS_REC if recursive else 0))
    if not writable:
        _read_only(target)


def _tmpfs(root: str, path: str, options: str) -> None:
    target = _place(root, path, "/")
    _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, options)


def _devices(root: str) -> None:
    _tmpfs(root, "/dev", "mode=0755,size=64k")
    for name in DEVICES:
        if os.path.exists(f"/dev/{name}"):
            target = _place(root, f"/dev/{name}", f"/dev/{name}")
            _mount(f"/dev/{name}", target, None, MS_BIND)
    for name, points_to in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                            ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(points_to, f"{root}/dev/{name}")
    _tmpfs(root, "/dev/shm", SCRATCH_TMPFS)
    _read_only(f"{root}/dev", MS_NOSUID | MS_NODEV)


def _proc(root: str, user_namespace: bool) -> None:
    """A new /proc showing only this user's processes; else (a user namespace, which may not
    mount one, or an old kernel, whose hidepid would change the machine's /proc too) the
    machine's, where other users' and other namespaces' processes stay closed by credentials."""
    target = _place(root, "/proc", "/")
    if not user_namespace and _per_mount_proc_options():
        try:
            _mount("proc", target, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible")
            return
        except OSError:
            pass
    _mount("/proc", target, None, MS_BIND | MS_REC)
    _read_only(target)


def _per_mount_proc_options() -> bool:
    """Linux 5.8 and later keep /proc's mount options per mount."""
    try:
        major, minor = (int(part) for part in platform.release().split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (5, 8)


def _under(path: str, roots) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _pivot(root: str) -> None:
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(errno.ENOSYS, f"pivot_root: no system call number known for {platform.machine()}")
    old = f"{root}/{OLD_ROOT}"
    os.mkdir(old, 0o700)
    _check(_libc.syscall(number, root.encode(), old.encode()), f"pivot_root({root})")
    os.chdir("/")
    _check(_libc.umount2(f"/{OLD_ROOT}".encode(), MNT_DETACH), "detaching the old root")
    os.rmdir(f"/{OLD_ROOT}")
    _read_only("/", MS_NOSUID | MS_NODEV)


def enter_view(plan: dict) -> None:
    """Build the view ``plan`` describes and make it this process's root; raises OSError."""
    saved = os.umask(0o022)  # the view's own folders: traversable by the worker user
    try:
        _build(plan)
    finally:
        os.umask(saved)
    os.chdir(plan.get("cwd") or "/")


def _build(plan: dict) -> None:
    user_namespace = bool(plan.get("user_namespace"))
    _unshare(user_namespace)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing done here reaches the machine's namespace
    root = plan["mountpoint"]
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=4m")
    steps = [(d, 0) for d in SYSTEM_DIRS if os.path.lexists(d)]
    steps += [(p, 1) for p in plan.get("cover", ())] + [(p, 2) for p in plan.get("read", ())]
    steps += [(p, 3) for p in plan.get("write", ())] + [("/tmp", 4)]
    shown: list[str] = []   # what the binds so far show, by path
    for path, kind in sorted(steps, key=lambda s: (s[0].count("/"), s[0], s[1])):
        if kind == 0 and os.path.islink(path):
            os.symlink(os.readlink(path), root + path)
        elif kind == 0:
            _bind(root, path, recursive=True, writable=False)
            shown.append(path)
        elif kind == 1:
            if _under(path, shown) and os.path.isdir(path):
                _tmpfs(root, path, "mode=0755,size=64k")  # a bind above would show it: empty it
        elif kind == 4:
            _tmpfs(root, path, SCRATCH_TMPFS)
        elif os.path.exists(path):
            _bind(root, path, recursive=False, writable=kind == 3)
            shown.append(path)
    _devices(root)
    _proc(root, user_namespace)
    _pivot(root)


def drop_capabilities() -> None:
    """Give up every capability (what a new user namespace grants its creator)."""
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    header, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3: two sets
    _check(_libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")
