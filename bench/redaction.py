"""What `vigilus.redaction.redact()` costs on the texts every tool call hands it.

redact() runs on every tool call's result, arguments and log lines. Four texts, each redacted R times (each time
as a text not seen before, so the memo of short texts never answers) after 10 secrets are known by value:

- ps aux: 4 KB of `ps aux` output of a homelab host (mysqld, postgres, dockerd, ...), no secret in it;
- journal: 4 KB of a host's journal (sshd logins by public key, nginx access lines with URLs, docker), no secret;
- command: a 200-character command line without a secret (docker run ... && curl ...);
- command with a password: a 200-character mysqldump line with `--password V`.

Printed: microseconds per call (median and p90 over R calls) and how many values the result masked. Run it on
two checkouts to compare a change:

    .venv/bin/python bench/redaction.py [R, default 2000]
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

R = int(sys.argv[1]) if len(sys.argv) > 1 else 2000

PROCESSES = [
    "/sbin/init splash",
    "/lib/systemd/systemd-journald",
    "/usr/sbin/sshd -D",
    "/usr/sbin/cron -f -P",
    "/usr/sbin/mysqld --basedir=/usr --datadir=/var/lib/mysql --plugin-dir=/usr/lib/mysql/plugin",
    "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main -c config_file=/etc/postgresql/15/main/pg.conf",
    "postgres: 15/main: checkpointer",
    "/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock",
    "/usr/bin/containerd-shim-runc-v2 -namespace moby -id 4f2a9c07e1 -address /run/containerd/containerd.sock",
    "nginx: worker process",
    "/usr/bin/python3 /usr/bin/unattended-upgrade-shutdown --wait-for-signal",
    "[kworker/1:2-events]",
    "-bash",
]

JOURNAL = [
    "sshd[{pid}]: Accepted publickey for root from 192.168.1.{n} port 5{pid4} ssh2: ED25519 SHA256:Xb1{pid4}q",
    'nginx[{pid}]: 192.168.1.{n} - - "GET /api/v1/status?page={n} HTTP/1.1" 200 {pid4} "https://nas.lan/" "curl/8.5"',
    'dockerd[{pid}]: time="2025-03-01T10:{n:02d}:00Z" level=info msg="ignoring event" container=4f2a9c{pid4}',
    "systemd[1]: Started session-{n}.scope - Session {n} of User root.",
    "kernel: [UFW BLOCK] IN=eth0 OUT= SRC=10.0.0.{n} DST=10.0.0.1 PROTO=TCP SPT=5{pid4} DPT=22",
    "CRON[{pid}]: (root) CMD (test -x /usr/sbin/anacron || run-parts --report /etc/cron.daily)",
]

COMMAND = (
    "docker run -d --name web -p 8080:80 -v /srv/www:/usr/share/nginx/html:ro --restart unless-stopped "
    "-e TZ=Europe/Berlin nginx:1.27 && curl -fsS --retry 3 http://127.0.0.1:8080/healthz && docker ps"
)
MYSQLDUMP_LINE = (
    "mysqldump --single-transaction --routines -h db.lan -u backup --password S3cr3t-Backup-Pw -B app "
    "| gzip -9 > /srv/backup/app-$(date +%F).sql.gz && ls -l /srv/backup && df -h /srv/backup"
)


def ps_aux(rng: random.Random) -> str:
    text = "USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND\n"
    while len(text) < 4096:
        pid = rng.randint(1, 40000)
        text += (
            f"root     {pid:7d}  0.{rng.randint(0, 9)}  0.{rng.randint(0, 9)} {rng.randint(1000, 900000):6d} "
            f"{rng.randint(100, 90000):5d} ?        Ss   Mar01   0:{rng.randint(10, 59)} {rng.choice(PROCESSES)}\n"
        )
    return text[:4096]


def journal(rng: random.Random) -> str:
    text = ""
    while len(text) < 4096:
        pid = rng.randint(100, 40000)
        line = rng.choice(JOURNAL).format(pid=pid, pid4=pid % 10000, n=rng.randint(2, 59))
        text += f"Mar 01 10:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d} nas01 {line}\n"
    return text[:4096]


def timed(redact: object, texts: list[str]) -> tuple[float, float, int]:
    times = []
    for text in texts:
        start = time.perf_counter()
        out = redact(text)  # type: ignore[operator]
        times.append((time.perf_counter() - start) * 1e6)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9)], out.count("[REDACTED]")


def main() -> None:
    from vigilus.redaction import redact, remember_secret

    for i in range(10):
        remember_secret(f"stored-secret-{i}-9f8e7d6c")
    rng = random.Random(7)  # noqa: S311 - a fixed seed: the same texts every run
    cases = {
        "ps aux (4 KB)": [ps_aux(rng) for _ in range(50)],
        "journal (4 KB)": [journal(rng) for _ in range(50)],
        "command (200 chars)": [COMMAND],
        "command with a password": [MYSQLDUMP_LINE],
    }
    print(f"redact(): {R} calls per text, each text new to the memo; microseconds per call")
    print(f"{'':28s} {'median':>9s} {'p90':>9s}  masked")
    for name, bases in cases.items():
        for text in bases[:5]:  # warm up: compile the patterns
            redact(text)
        # A unique first line makes each call's text new (short texts are memoised), as a tool's output is.
        texts = [f"{i:06d}\n{bases[i % len(bases)]}" for i in range(R)]
        median, p90, masked = timed(redact, texts)
        print(f"{name:28s} {median:9.1f} {p90:9.1f}  {masked}")
    print("\nwhat the command with a password looks like redacted:")
    print(" ", redact(MYSQLDUMP_LINE))


if __name__ == "__main__":
    main()
