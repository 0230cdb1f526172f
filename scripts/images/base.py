#!/usr/bin/env python3
"""Assembles a distroless-like root filesystem from a debootstrap'd Debian.

    base.py ROOTFS DEST

ROOTFS is a Debian root (`debootstrap --variant=minbase
--include=ca-certificates,netbase,tzdata,libssl3,libgomp1 bookworm ROOTFS`);
DEST an empty folder (the mount point of `buildah from scratch`). DEST
receives the packages gcr.io/distroless/cc-debian12:nonroot is made of
(distroless `base`: base-files, netbase, tzdata, libc6, libssl3,
ca-certificates; `cc` adds libgcc-s1, libgomp1, libstdc++6), so that a binary
that runs here runs there, and nothing to run another program with (no
shell, no package manager):

- the files of the packages in PACKAGES (from dpkg's file lists), without
  documentation, manual pages and translations; of ca-certificates only the
  bundle /etc/ssl/certs/ca-certificates.crt;
- the merged-/usr links (/bin, /lib, /lib64, /sbin), /etc/localtime (UTC);
- /etc/passwd and /etc/group with root, nobody and nonroot (65532),
  /etc/nsswitch.conf, /home/nonroot (65532, 0700), /tmp (1777);
- /var/lib/dpkg/status.d/<package>: dpkg's status of each package, where
  image scanners look for it in distroless images.

Prints one line per package: name and version (the script labels the image
with them).
"""

import os
import shutil
import stat
import sys
from pathlib import Path

PACKAGES = [
    "base-files",
    "netbase",
    "tzdata",
    "libc6",
    "libssl3",
    "ca-certificates",
    "libgcc-s1",
    "libgomp1",
    "libstdc++6",
]
SKIP = (
    "/usr/share/doc/",
    "/usr/share/man/",
    "/usr/share/info/",
    "/usr/share/lintian/",
    "/usr/share/locale/",
    "/usr/share/bug/",
    "/usr/share/common-licenses/",
    "/usr/share/gcc/",
    "/usr/share/gdb/",
    "/usr/share/ca-certificates/",
    "/usr/sbin/",
    "/usr/bin/",
    "/etc/ca-certificates",
)
NONROOT = 65532

PASSWD = """\
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
"""
GROUP = """\
root:x:0:
tty:x:5:
staff:x:50:
nogroup:x:65534:
nonroot:x:65532:
"""
NSSWITCH = """\
passwd:         files
group:          files
shadow:         files
hosts:          files dns
networks:       files
protocols:      files
services:       files
ethers:         files
rpc:            files
"""


def inside(root: Path, path: str) -> Path:
    """`path` of the Debian root, its folders' symlinks resolved within the root."""
    parent, name = os.path.split(path.rstrip("/"))
    real = Path(os.path.realpath(str(root) + parent))
    if real != root and root not in real.parents:
        raise SystemExit(f"{path}: resolves outside {root}")
    return real / name


def copy_entry(src: Path, dst: Path) -> None:
    info = os.lstat(src)
    if stat.S_ISDIR(info.st_mode):
        dst.mkdir(parents=True, exist_ok=True)
        os.chmod(dst, stat.S_IMODE(info.st_mode))
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists() or dst.is_symlink():
            dst.unlink()
        if stat.S_ISLNK(info.st_mode):
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst, follow_symlinks=False)
    os.lchown(dst, info.st_uid, info.st_gid)


def file_list(root: Path, package: str) -> list:
    info = root / "var/lib/dpkg/info"
    for name in (f"{package}.list", f"{package}:amd64.list"):
        if (info / name).is_file():
            return (info / name).read_text().splitlines()
    raise SystemExit(f"{package} is not installed in {root}")


def status_paragraphs(root: Path) -> dict:
    paragraphs = {}
    for block in (root / "var/lib/dpkg/status").read_text().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != " "
        )
        if "Package" in fields:
            paragraphs[fields["Package"]] = (block.strip() + "\n", fields.get("Version", "?"))
    return paragraphs


def write(dest: Path, path: str, text: str, mode: int = 0o644) -> None:
    target = dest / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    target.write_text(text)
    os.chmod(target, mode)


def main() -> None:
    root, dest = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    # The merged-/usr links first, so that /lib64/ld-linux-x86-64.so.2 lands
    # in usr/lib64 as on Debian.
    for top in ("bin", "lib", "lib64", "sbin"):
        if (root / top).is_symlink():
            copy_entry(root / top, dest / top)
    for package in PACKAGES:
        for path in file_list(root, package):
            if path in ("/.", "") or path.startswith(SKIP):
                continue
            src = inside(root, path)
            if not (src.exists() or src.is_symlink()):
                continue  # diverted or removed by a maintainer script
            copy_entry(src, dest / src.relative_to(root))
    for path in ("etc/ssl/certs/ca-certificates.crt", "etc/localtime", "etc/timezone"):
        copy_entry(root / path, dest / path)
    write(dest, "/etc/passwd", PASSWD)
    write(dest, "/etc/group", GROUP)
    write(dest, "/etc/nsswitch.conf", NSSWITCH)
    for folder, mode, owner in (
        ("tmp", 0o1777, 0),
        ("root", 0o700, 0),
        ("home/nonroot", 0o700, NONROOT),
        ("var/lib/dpkg/status.d", 0o755, 0),
    ):
        (dest / folder).mkdir(parents=True, exist_ok=True)
        os.chmod(dest / folder, mode)
        os.chown(dest / folder, owner, owner)
    paragraphs = status_paragraphs(root)
    for package in PACKAGES:
        text, version = paragraphs[package]
        write(dest, f"/var/lib/dpkg/status.d/{package}", text)
        print(f"{package} {version}")


if __name__ == "__main__":
    main()
