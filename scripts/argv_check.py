#!/usr/bin/env python3
"""Checks proctree's exec lines against the kernel's own audit records, independently of
proctree's code (Python's socket module reads the audit multicast group; nothing of
proctree parses the truth).

    python3 scripts/argv_check.py [--proctree-args "..."] -- CMD ARGS...
    python3 scripts/argv_check.py -- sh scripts/workloads.sh shell   (the workloads checked)

Installs an audit rule for execve/execveat scoped to a fresh login uid, starts
`proctree watch --events exec` (default settings unless --proctree-args), runs CMD with that
login uid (written to /proc/self/loginuid first), and compares every successful exec the
kernel audited with proctree's exec line of the same pid (in order): argv, comm, exe and
cwd.
Prints one JSON line of counts. Restores the audit state (rules deleted, enabled as found).
Needs root and auditctl.
"""

import json
import os
import re
import select
import shlex
import socket
import subprocess
import sys
import time

AUDIT_NLGRP_READLOG = 1
AUDIT_SYSCALL, AUDIT_CWD, AUDIT_EXECVE, AUDIT_EOE = 1300, 1307, 1309, 1320
HERE = os.path.dirname(os.path.abspath(__file__))


def auditctl(*args):
    return subprocess.run(["auditctl", *args], capture_output=True, text=True).stdout


def unhex(v):
    """An audit value: "quoted" text, or hex bytes (then kept as bytes, decoded like
    proctree: invalid UTF-8 bytes become U+DC80..U+DCFF)."""
    if v.startswith('"'):
        return v[1:-1]
    if v == "(null)":
        return None
    return bytes.fromhex(v).decode("utf-8", "surrogateescape")


FIELD = re.compile(r'(\w+)=("[^"]*"|\S+)')


def read_records(sock, stop_at, records):
    """Collects audit messages until `stop_at` (monotonic seconds)."""
    while time.monotonic() < stop_at:
        r, _, _ = select.select([sock], [], [], 0.2)
        if not r:
            continue
        data = sock.recv(1 << 16)
        at = 0
        while at + 16 <= len(data):
            length = int.from_bytes(data[at:at + 4], "little")
            kind = int.from_bytes(data[at + 4:at + 6], "little")
            text = data[at + 16:at + length].rstrip(b"\0").decode("utf-8", "replace")
            m = re.match(r"audit\((\d+\.\d+):(\d+)\): ?(.*)", text, re.S)
            if m:
                records.setdefault(int(m.group(2)), {}).setdefault(kind, []).append(m.group(3))
            at += (length + 3) & ~3
            if length == 0:
                break


def audited_execs(records):
    """Successful execs: pid, argv, comm, exe, cwd, in serial order."""
    out = []
    for serial in sorted(records):
        rec = records[serial]
        if AUDIT_SYSCALL not in rec or AUDIT_EXECVE not in rec:
            continue
        sc = dict(FIELD.findall(rec[AUDIT_SYSCALL][0]))
        if sc.get("success") != "yes":
            continue
        ex = dict(FIELD.findall(" ".join(rec[AUDIT_EXECVE])))
        argc = int(ex["argc"])
        argv = [unhex(ex.get(f"a{i}", '""')) for i in range(argc)]
        cwd = dict(FIELD.findall(rec[AUDIT_CWD][0])).get("cwd") if AUDIT_CWD in rec else None
        out.append({"pid": int(sc["pid"]), "argv": argv, "comm": unhex(sc["comm"]),
                    "exe": unhex(sc["exe"]), "cwd": unhex(cwd) if cwd else None})
    return out


def main():
    argv = sys.argv[1:]
    extra = []
    if argv[:1] == ["--proctree-args"]:
        extra = shlex.split(argv[1])
        argv = argv[2:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    auid = 40000 + os.getpid() % 20000
    enabled = re.search(r"enabled (\d)", auditctl("-s")).group(1)
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 9)  # NETLINK_AUDIT
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    sock.bind((0, AUDIT_NLGRP_READLOG))
    auditctl("-b", "65536")
    auditctl("-a", "always,exit", "-F", "arch=b64", "-S", "execve,execveat", "-F",
             f"auid={auid}", "-k", "proctree_check")
    auditctl("-e", "1")
    records = {}
    out_path = f"/tmp/argv_check.{os.getpid()}.jsonl"
    try:
        with open(out_path, "w") as out:
            pt = subprocess.Popen(
                ["deno", "task", "-q", "proctree", "watch", "--events", "exec", *extra],
                cwd=os.path.dirname(HERE), stdout=out, stderr=subprocess.PIPE, text=True)
            line = pt.stderr.readline()
            while line and "listening" not in line:
                line = pt.stderr.readline()
            listening = line.strip()
            work = subprocess.Popen(["sh", "-c", f'echo {auid} > /proc/self/loginuid && exec "$@"',
                                     "sh", *argv], stdout=subprocess.DEVNULL)
            while work.poll() is None:
                read_records(sock, time.monotonic() + 0.5, records)
            read_records(sock, time.monotonic() + 2, records)
            pt.send_signal(2)
            pt.wait()
    finally:
        auditctl("-d", "always,exit", "-F", "arch=b64", "-S", "execve,execveat", "-F",
                 f"auid={auid}", "-k", "proctree_check")
        auditctl("-e", enabled)
    lines = {}
    for l in open(out_path):
        r = json.loads(l)
        if r.get("event") == "exec":
            lines.setdefault(r["pid"], []).append(r)
    truth = audited_execs(records)
    counts = {"execs": len(truth), "argv_right": 0, "argv_null": 0, "argv_wrong": 0,
              "comm_right": 0, "comm_null": 0, "comm_wrong": 0, "exe_right": 0, "exe_null": 0,
              "exe_wrong": 0, "cwd_right": 0, "cwd_null": 0, "cwd_wrong": 0, "no_line": 0}
    wrong = []
    # Audited execs of a pid are the last ones proctree saw of it: the workload's first
    # process exec'd before it set its login uid (not audited).
    per_pid = {}
    for t in truth:
        per_pid[t["pid"]] = per_pid.get(t["pid"], 0) + 1
    for pid, k in per_pid.items():
        lines[pid] = lines.get(pid, [])[-k:]
        if len(lines[pid]) < k:
            lines[pid] = [None] * (k - len(lines[pid])) + lines[pid]
    for t in truth:
        r = lines[t["pid"]].pop(0)
        if r is None:
            counts["no_line"] += 1
            continue
        for key in ("argv", "comm", "exe", "cwd"):
            got = r.get(key)
            if got is None:
                counts[f"{key}_null"] += 1
            elif got == t[key]:
                counts[f"{key}_right"] += 1
            else:
                counts[f"{key}_wrong"] += 1
                wrong.append({"field": key, "proctree": got, "audit": t[key], "pid": t["pid"]})
    os.unlink(out_path)
    counts["listening"] = listening
    print(json.dumps(counts))
    for w in wrong[:10]:
        print(json.dumps(w), file=sys.stderr)


if __name__ == "__main__":
    main()
