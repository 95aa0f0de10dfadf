# A fresh Debian 12 booting systemd, the machine install.sh is tested on (tests/packaging/test_install_script.py):
# nothing of Vigilus's, so install.sh installs every package it needs itself. Built with `--pull=false` from the
# debian:bookworm-slim the tests make (tests/packaging/engine.py).
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends systemd systemd-sysv \
 && rm -rf /var/lib/apt/lists/* \
 && systemctl mask getty@tty1.service console-getty.service systemd-logind.service
# systemd stops cleanly on SIGRTMIN+3 (what `docker stop` sends then).
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
