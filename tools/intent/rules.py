"""The rules of the command-line classifier (tools/intent/commandline.py), kept as data.

Policy, in one place:

- `read`: only commands in `READ_RULES`, used with options their rule allows. A rule is either an
  allow-list of options (anything else is not read) or, for commands none of whose options write
  or run anything, a deny-list naming the options that do. GNU long options may be abbreviated, so
  a deny-list entry also catches every prefix of it (`--in-pl` is `--in-place`).
- `write`: the line changes files or system state and runs nothing the classifier cannot see:
  `WRITE_COMMANDS`, read commands with a writing option (`sed -i`, `sort -o`, `hostname NAME`),
  redirection into files, and any shell structure (`;`, `&&`, `|&`, here-strings, `2>/dev/null`)
  whose every command is understood, since that needs a shell but runs nothing unknown.
- `exec`: interpreters and shells, commands that run other commands (`xargs`, `env CMD`, `find -exec`),
  package and service managers (they run maintainer scripts and units), git (repository config can
  run programs: core.fsmonitor, diff drivers, pagers), unknown commands, and anything the
  classifier cannot check (unparseable input, expansions feeding a read command's arguments).
- `elevate`: anything that changes privilege: sudo & co, account and capability tools, kernel
  modules, setuid bits, and containers with host privileges (`--privileged`, host namespaces,
  bind mounts of host paths, devices).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from tools.choices import Intent
from tools.intent.sed import sed_script_effects


@dataclass(frozen=True)
class Verdict:
    """Why a part of a command line is not read: the intent it implies, said for a person."""

    intent: Intent
    reason: str


# A check sees (all arguments, the operands the option parser found) and says why it is not read.
Check = Callable[[tuple[str, ...], tuple[str, ...]], "list[Verdict]"]


@dataclass(frozen=True)
class ReadRule:
    """How a read-only command may be used.

    Reasons in `otherwise` follow the command and its verb: "`ip addr add`: changes network configuration".

    `allow` is an allow-list of options (`-a`, `--all`); None means any option not in `deny`.
    `values` are options that take the next word as their value; `optional_values` take one only
    when it is attached. `operands` caps the number of
    non-option arguments, with `operands_verdict` saying what more of them means. `subcommands`
    makes the first argument a verb that must be one of them (after `global_options`), with
    `otherwise` saying what any other verb means. `check` sees the arguments for what options
    alone cannot say (a sed script, a date operand)."""

    allow: frozenset[str] | None = None
    deny: Mapping[str, Verdict] = field(default_factory=dict)
    values: frozenset[str] = frozenset()
    optional_values: frozenset[str] = frozenset()  # a value only when attached: `-i.bak`, `-Iseconds`
    operands: int | None = None
    operands_verdict: Verdict | None = None
    require: frozenset[str] = frozenset()
    subcommands: Mapping[str, ReadRule] | None = None
    subcommand_optional: bool = False
    global_options: frozenset[str] = frozenset()
    otherwise: Verdict | None = None
    single_dash_long: bool = False  # options are whole words: `find -name`, `ip -brief`
    check: Check | None = None


def _deny(intent: Intent, reason: str, *options: str) -> dict[str, Verdict]:
    return dict.fromkeys(options, Verdict(intent, reason))


def _set(names: str) -> frozenset[str]:
    """A set of names written as one space-separated string (keeps the tables short)."""
    return frozenset(names.split())


def _names(names: str) -> tuple[str, ...]:
    return tuple(names.split())


W, X, E = Intent.WRITE, Intent.EXEC, Intent.ELEVATE
ANY = ReadRule()


# --- checks for what options cannot say ---------------------------------------------------------


def _date_operands(args: tuple[str, ...], operands: tuple[str, ...]) -> list[Verdict]:
    """`date +FORMAT` prints; `date MMDDhhmm` sets the clock."""
    if any(not word.startswith("+") for word in operands):
        return [Verdict(W, "`date` with a time operand sets the system clock")]
    return []


_SED_LONG = _names(
    "--expression --file --in-place --line-length --null-data --zero-terminated --quiet --silent "
    "--regexp-extended --separate --sandbox --unbuffered --debug --posix --follow-symlinks --help "
    "--version --binary"
)


def _long(name: str, known: tuple[str, ...]) -> str | None:
    """The long option `name` abbreviates, if exactly one (GNU getopt_long semantics)."""
    if name in known:
        return name
    found = [k for k in known if k.startswith(name)]
    return found[0] if len(found) == 1 else None


_PS_VALUES = _set("-o -O -p -u -U -g -G -t -C --format --pid --user --sort")


def _ps(args: tuple[str, ...], operands: tuple[str, ...]) -> list[Verdict]:
    """`ps e`, `ps auxe`, `ps -o environ`: processes' environments, where Vigilus's own secrets live."""
    words = [*args, *operands]
    bundles = [  # BSD-style option letters (`aux`, `eww`), not the value of an option like `-u alice`
        word
        for previous, word in zip(["", *words], words, strict=False)
        if word.isalpha() and previous not in _PS_VALUES
    ]
    bsd_e = any("e" in word for word in bundles)
    environ = any("env" in word.lower() for word in words)  # -o environ, --format env, o=environ ...
    if bsd_e or environ:
        return [Verdict(X, "`ps` with `e` or `environ` shows processes' environments, which hold secrets")]
    return []


def _sed(args: tuple[str, ...], _operands: tuple[str, ...]) -> list[Verdict]:
    """Find sed's scripts and say what they do: `e` runs commands, `w` writes files."""
    scripts: list[str] = []
    operands: list[str] = []
    verdicts: list[Verdict] = []
    it = iter(args)
    for word in it:
        if word == "--":
            operands.extend(it)
            break
        if word.startswith("--"):
            name, eq, value = word.partition("=")
            canonical = _long(name, _SED_LONG)
            if canonical == "--expression":
                scripts.append(value if eq else next(it, ""))
            elif canonical == "--file":
                verdicts.append(Verdict(X, "`sed -f` runs a script from a file that cannot be checked"))
            elif canonical == "--line-length" and not eq:
                next(it, "")
        elif word.startswith("-") and word != "-":
            for i, ch in enumerate(word[1:], start=1):
                if ch in "ef":
                    value = word[i + 1 :] or next(it, "")
                    if ch == "e":
                        scripts.append(value)
                    else:
                        verdicts.append(Verdict(X, "`sed -f` runs a script from a file that cannot be checked"))
                    break
                if ch == "l":
                    if not word[i + 1 :]:
                        next(it, "")
                    break
                if ch == "i":
                    break
        else:
            operands.append(word)
    if not scripts and operands:
        scripts.append(operands[0])
    for script in scripts:
        does = sed_script_effects(script)
        if does is None:
            verdicts.append(Verdict(X, "could not be sure what the sed script does"))
        elif "e" in does:
            verdicts.append(Verdict(X, "the sed `e` command runs shell commands"))
        elif "w" in does:
            verdicts.append(Verdict(W, "the sed `w` command writes files"))
    return verdicts


def _chmod_mode_is_setuid(mode: str) -> bool:
    """Whether a chmod mode can set the setuid/setgid bits (or cannot be read)."""
    if re.fullmatch(r"[0-7]{1,5}", mode):
        return bool(int(mode, 8) & 0o6000)
    if re.fullmatch(r"[ugoa]*(?:[-+=][rwxXst]*)+(?:,[ugoa]*(?:[-+=][rwxXst]*)+)*", mode):
        return "s" in mode
    return True


def chmod_verdicts(args: tuple[str, ...], _operands: tuple[str, ...]) -> list[Verdict]:
    """chmod writes; a mode that sets setuid/setgid (or copies one with --reference) elevates."""
    modes = [a for a in args if not a.startswith("-") or re.fullmatch(r"-[rwxXst]+", a)]
    if any(a.startswith("--reference") for a in args) or (modes and _chmod_mode_is_setuid(modes[0])):
        return [Verdict(E, "`chmod` setting setuid/setgid bits grants privilege")]
    return [Verdict(W, "`chmod` changes file permissions")]


_TAR_EXEC_LONG = _names(
    "--to-command --use-compress-program --checkpoint-action --info-script --new-volume-script "
    "--rsh-command --rmt-command"
)


def tar_verdicts(args: tuple[str, ...], _operands: tuple[str, ...]) -> list[Verdict]:
    """tar writes files; a few of its options run programs."""
    for n, word in enumerate(args):
        name = word.partition("=")[0]
        if word.startswith("--") and len(name) > 2 and any(k.startswith(name) for k in _TAR_EXEC_LONG):
            return [Verdict(X, f"`tar {name}` runs a program")]
        cluster = word[1:] if word.startswith("-") and not word.startswith("--") else word if n == 0 else ""
        if set(cluster) & {"I", "F"}:
            return [Verdict(X, "`tar -I`/`-F` runs a program")]
    return [Verdict(W, "`tar` writes files")]


# --- read-only commands ------------------------------------------------------------------------

_SUBCOMMAND_ONLY = ReadRule()
_NO_OPERANDS = ReadRule(operands=0)

_DOCKER_READ = ReadRule(
    subcommands={
        **dict.fromkeys(_names("ps images inspect logs stats version info top port diff history events"), ANY),
        "container": ReadRule(subcommands=dict.fromkeys(_names("ls ps list inspect logs top port diff stats"), ANY)),
        "image": ReadRule(subcommands=dict.fromkeys(_names("ls list inspect history"), ANY)),
        "network": ReadRule(subcommands=dict.fromkeys(_names("ls list inspect"), ANY)),
        "volume": ReadRule(subcommands=dict.fromkeys(_names("ls list inspect"), ANY)),
        "system": ReadRule(subcommands=dict.fromkeys(_names("df info"), ANY)),
    },
    otherwise=Verdict(X, "starts or changes containers, which run their own code"),
)

# apt's -o/-c can point it at other programs to run
_APT_READ = ReadRule(
    deny=_deny(X, "apt configuration options can name programs to run", "-o", "--option", "-c", "--config-file")
)

_IP_VERBS = dict.fromkeys(_names("show list lst ls"), ANY)
_IP_OBJECT = ReadRule(
    subcommands=_IP_VERBS,
    subcommand_optional=True,
    otherwise=Verdict(W, "changes network configuration"),
)
_IP_ROUTE = ReadRule(
    subcommands={**_IP_VERBS, "get": ANY},
    subcommand_optional=True,
    otherwise=Verdict(W, "changes network configuration"),
)

READ_RULES: dict[str, ReadRule] = {
    # files and text
    **dict.fromkeys(
        _names(
            "cat tac head tail wc nl cut tr column paste join fold fmt rev expand unexpand comm cmp diff strings "
            "od hexdump base64 zcat jq stat readlink realpath basename dirname ls dir vdir du df lsattr md5sum "
            "sha1sum sha224sum sha256sum sha384sum sha512sum b2sum cksum grep egrep fgrep echo printf seq sleep "
            "true false pwd expr"
        ),
        ANY,
    ),
    "rg": ReadRule(deny=_deny(X, "this ripgrep option runs a program", "--pre", "--hostname-bin")),
    "sort": ReadRule(
        deny={
            **_deny(W, "`sort -o` writes a file", "-o", "--output"),
            **_deny(X, "`sort --compress-program` runs a program", "--compress-program"),
        },
        values=_set("-k -t -o -S -T --key --field-separator --buffer-size --temporary-directory --parallel"),
    ),
    "uniq": ReadRule(
        values=_set("-f -s -w --skip-fields --skip-chars --check-chars"),
        operands=1,
        operands_verdict=Verdict(W, "`uniq INPUT OUTPUT` writes the output file"),
    ),
    "tree": ReadRule(deny=_deny(W, "`tree -o`/`-R` writes files", "-o", "-R"), values=_set("-L -P -I -o")),
    "file": ReadRule(deny=_deny(W, "`file -C` writes a compiled magic file", "-C", "--compile")),
    "find": ReadRule(
        single_dash_long=True,
        deny={
            **_deny(X, "`find -exec` runs commands", "-exec", "-execdir", "-ok", "-okdir"),
            **_deny(W, "`find -delete` deletes files", "-delete"),
            **_deny(W, "`find -fprint`/`-fls` writes files", "-fprint", "-fprint0", "-fprintf", "-fls"),
        },
    ),
    "sed": ReadRule(
        allow=_set("-n -e -f -l -E -r -s -u -z -i") | frozenset(_SED_LONG),
        deny=_deny(W, "`sed -i` edits files in place", "-i", "--in-place"),
        values=_set("-e -f -l --expression --file --line-length"),
        optional_values=_set("-i"),
        check=_sed,
    ),
    # system state
    **dict.fromkeys(
        _names(
            "uptime whoami id groups users w who last lastlog nproc arch uname free vmstat iostat mpstat lscpu "
            "lsblk lsusb lspci lsmod findmnt pgrep pidof lsof netstat getent which whereis printenv locale "
            "getconf cal dig host nslookup traceroute tracepath"
        ),
        ANY,
    ),
    "ps": ReadRule(values=_PS_VALUES, check=_ps),
    "ping": ReadRule(deny=_deny(X, "`ping -f` floods the network", "-f")),
    "ss": ReadRule(
        deny={
            **_deny(W, "`ss -K` kills sockets", "-K", "--kill"),
            **_deny(W, "`ss -D` writes a dump file", "-D", "--diag"),
        },
        values=_set("-f -A -F -N --family --query --filter --net"),
    ),
    "date": ReadRule(
        deny=_deny(W, "`date -s` sets the system clock", "-s", "--set"),
        values=_set("-d --date -f --file -r --reference"),
        optional_values=_set("-I"),
        check=_date_operands,
    ),
    "hostname": ReadRule(
        allow=_set(
            "-s -f -d -i -I -A -a -y -V -h --short --fqdn --long --domain --ip-address --all-ip-addresses "
            "--all-fqdns --alias --nis --version --help"
        ),
        deny=_deny(W, "`hostname -F`/`-b` sets the hostname", "-F", "-b", "--file", "--boot"),
        operands=0,
        operands_verdict=Verdict(W, "`hostname NAME` sets the hostname"),
    ),
    "dmesg": ReadRule(
        deny=_deny(
            W,
            "this dmesg option changes the kernel log",
            "-c",
            "-C",
            "-D",
            "-E",
            "-n",
            "--clear",
            "--read-clear",
            "--console-off",
            "--console-on",
            "--console-level",
        ),
    ),
    "journalctl": ReadRule(
        deny=_deny(
            W,
            "this journalctl option changes the journal",
            "--vacuum-size",
            "--vacuum-time",
            "--vacuum-files",
            "--rotate",
            "--flush",
            "--sync",
            "--relinquish-var",
            "--smart-relinquish-var",
            "--setup-keys",
            "--update-catalog",
            "--cursor-file",
        ),
    ),
    "env": ReadRule(
        allow=_set("-0 --null"),
        operands=0,
        operands_verdict=Verdict(X, "`env` with arguments runs a command or changes its environment"),
    ),
    "mount": ReadRule(
        allow=_set("-l --show-labels -t --types"),
        values=_set("-t --types"),
        operands=0,
        operands_verdict=Verdict(W, "`mount` with a device or directory mounts a filesystem"),
    ),
    "top": ReadRule(
        allow=_set("-b -n -c -H -i -o -w -1 -E -e -p -u -U -d -S"),
        values=_set("-n -o -w -E -e -p -u -U -d"),
        require=_set("-b"),
        operands=0,
    ),
    "sensors": ReadRule(deny=_deny(W, "`sensors -s` sets chip limits", "-s", "--set")),
    "smartctl": ReadRule(
        allow=_set(
            "-a -x -i -H -A -c -l -d -j --all --xall --info --health --attributes --capabilities --log --device --json"
        ),
        values=_set("-l -d --log --device"),
    ),
    "systemctl": ReadRule(
        global_options=_set(
            "--no-pager --user --system --all -a --failed --full -l --no-legend --plain --type --state -q --quiet"
        ),
        subcommands=dict.fromkeys(
            _names(
                "status show cat list-units list-unit-files list-timers list-sockets list-dependencies list-jobs "
                "is-active is-enabled is-failed is-system-running get-default show-environment"
            ),
            ANY,
        ),
        otherwise=Verdict(X, "starts, stops or changes services, which run their own code"),
    ),
    "timedatectl": ReadRule(
        subcommands=dict.fromkeys(_names("status show list-timezones timesync-status show-timesync"), ANY),
        subcommand_optional=True,
        otherwise=Verdict(W, "changes the clock settings"),
    ),
    "hostnamectl": ReadRule(
        subcommands={"status": ANY},
        subcommand_optional=True,
        otherwise=Verdict(W, "changes the hostname"),
    ),
    "docker": _DOCKER_READ,
    "podman": _DOCKER_READ,
    "zpool": ReadRule(
        subcommands=dict.fromkeys(_names("status list iostat get history"), ANY),
        otherwise=Verdict(W, "changes the pool"),
    ),
    "zfs": ReadRule(
        subcommands=dict.fromkeys(_names("list get"), ANY),
        otherwise=Verdict(W, "changes datasets"),
    ),
    "ip": ReadRule(
        global_options=_set(
            "-4 -6 -s -stats -statistics -d -details -br -brief -c -color -j -json -p -pretty -o -oneline -h "
            "-human -human-readable -r -resolve"
        ),
        subcommands={
            **dict.fromkeys(_names("a addr address"), _IP_OBJECT),
            **dict.fromkeys(_names("l link"), _IP_OBJECT),
            **dict.fromkeys(_names("n neigh neighbor neighbour"), _IP_OBJECT),
            "rule": _IP_OBJECT,
            **dict.fromkeys(_names("r ro route"), _IP_ROUTE),
        },
        otherwise=Verdict(X, "is not known to be read-only (`ip netns exec` runs commands)"),
    ),
    "apt": ReadRule(
        subcommands=dict.fromkeys(_names("list show policy search depends rdepends"), _APT_READ),
        otherwise=Verdict(X, "changes packages; package managers run maintainer scripts"),
    ),
    "apt-cache": ReadRule(
        subcommands=dict.fromkeys(
            _names("show showpkg policy search depends rdepends stats madison pkgnames"),
            _APT_READ,
        ),
        otherwise=Verdict(X, "is not known to be read-only"),
    ),
    "dpkg": ReadRule(
        allow=_set(
            "-l --list -s --status -L --listfiles -S --search -p --print-avail --get-selections "
            "--print-architecture --print-foreign-architectures -C --audit"
        ),
    ),
    "dpkg-query": ANY,
}
# Only these directories are trusted to hold the real programs when a command is named by path.
STANDARD_BIN_DIRS = _set("/bin /usr/bin /sbin /usr/sbin")

# Shell builtins that do nothing by themselves; they only work inside a shell, so never read.
SHELL_BUILTINS = _set("cd : pushd popd test [")

# --- everything else ---------------------------------------------------------------------------

ELEVATE_COMMANDS: dict[str, str] = {
    **dict.fromkeys(_names("sudo sudoedit su doas pkexec runuser setpriv newgrp sg"), "runs a command as another user"),
    **dict.fromkeys(
        _names("chroot nsenter unshare capsh machinectl systemd-run"),
        "runs a command with other privileges or namespaces",
    ),
    **dict.fromkeys(
        _names(
            "setcap visudo passwd chpasswd usermod useradd userdel adduser deluser addgroup delgroup groupadd "
            "groupmod groupdel gpasswd vipw vigr chsh"
        ),
        "changes accounts, passwords or capabilities",
    ),
    **dict.fromkeys(_names("insmod rmmod modprobe kexec"), "loads kernel code"),
}

WRITE_COMMANDS: dict[str, str] = {
    **dict.fromkeys(
        _names(
            "touch mkdir rmdir rm cp mv ln link unlink truncate tee shred mkfifo mknod mktemp fallocate dd chown "
            "chgrp chattr gzip gunzip bzip2 bunzip2 xz unxz zstd unzstd unzip"
        ),
        "writes files",
    ),
    **dict.fromkeys(_names("kill pkill killall"), "signals processes"),
    **dict.fromkeys(_names("reboot shutdown poweroff halt"), "changes the machine's power state"),
    **dict.fromkeys(_names("sysctl swapon swapoff umount hwclock"), "changes system state"),
}

# Write commands whose options need a closer look (they can set setuid bits or run programs).
WRITE_CHECKS: dict[str, Check] = {"chmod": chmod_verdicts, "tar": tar_verdicts}

SHELLS = _set("sh bash dash zsh ksh mksh fish csh tcsh ash busybox")
INTERPRETERS = _set(
    "awk gawk mawk nawk perl python python2 python3 ruby node nodejs php lua tclsh wish Rscript julia "
    "deno bun osascript pwsh dc bc ed ex vi vim nvim nano emacs less more most man make git ssh scp sftp "
    "rsync curl wget nc ncat socat telnet crontab at batch install patch zip"
)
WRAPPERS = _set(
    "env xargs nice nohup timeout stdbuf ionice setsid time watch strace ltrace flock chrt taskset "
    "command builtin exec eval source . unbuffer script parallel trap alias export declare typeset local "
    "readonly set unset shopt enable hash"
)

# Words that, anywhere in a line the classifier could not fully see into, mean it may elevate.
ELEVATE_WORDS = frozenset(ELEVATE_COMMANDS) | {"--privileged", "--cap-add"}

CONTAINER_CLIS = _set("docker podman nerdctl")
# Container options that hand the container host privileges.
CONTAINER_HOST_NAMESPACES = ("--pid", "--net", "--network", "--ipc", "--uts", "--userns", "--cgroupns")
CONTAINER_PRIVILEGED = ("--privileged", "--cap-add", "--device", "--security-opt", "--device-cgroup-rule")
CONTAINER_MOUNTS = ("--volume", "--mount", "--volumes-from")
