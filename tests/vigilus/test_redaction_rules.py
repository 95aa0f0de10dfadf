"""Each rule of vigilus.secret_rules masks its shape of secret and nothing else: positive examples lose the value
and keep the rest of the text, negative examples come out as they went in."""

from __future__ import annotations

import json
import string

import pytest

from vigilus.redaction import MASK, redact, redact_json

M = MASK


def fake(prefix: str, length: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    """A made-up token: `prefix` and `length` characters of `alphabet` (built here, not written out, so that secret
    scanners do not take this file for a leak)."""
    return prefix + "".join(alphabet[(i * 7 + 3) % len(alphabet)] for i in range(length))


HEX = "0123456789abcdef"
UPPER = string.ascii_uppercase + string.digits
URLSAFE = string.ascii_letters + string.digits + "-_"
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJuYXMwMSIsImV4cCI6MTcwMDAwMDAwMH0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAexample0key0material0only0for0tests\n"
    "-----END RSA PRIVATE KEY-----"
)
PGP = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBGexample0only\n=Ab1c\n-----END PGP PRIVATE KEY BLOCK-----"
SSH2 = "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nP2/56wAAAexample0only\n---- END SSH2 ENCRYPTED PRIVATE KEY ----"
PPK = (
    "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: nas\nPublic-Lines: 2\n"
    "AAAAC3NzaC1lZDI1NTE5AAAAIB\nx0x8example\nPrivate-Lines: 1\n{lines}\nPrivate-MAC: 4f2c9a\n"
)

# rule name -> (positive examples: text and what redact() makes of it, negative examples: left as they are)
CASES: dict[str, tuple[list[tuple[str, str]], list[str]]] = {
    "private key block": (
        [
            (f"key:\n{PEM}\nend", f"key:\n{M}\nend"),
            (f"gpg --export-secret-keys:\n{PGP}\ndone", f"gpg --export-secret-keys:\n{M}\ndone"),
            (f"{SSH2}\n", f"{M}\n"),
            ("cut short: " + PEM[:60], f"cut short: {M}"),
        ],
        [
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
            "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----",
            "the private key is in ~/.ssh/id_ed25519",
        ],
    ),
    "PuTTY private lines": (
        [
            (
                PPK.format(lines="AAAAIExampleOnlyPrivateBytes0000"),
                PPK.format(lines=M),
            ),
        ],
        ["Public-Lines: 2\nAAAAC3NzaC1lZDI1NTE5AAAAIB\n", "Private-Lines: unknown\n"],
    ),
    "Authorization header": (
        [
            (
                'curl -H "Authorization: Token 9f8e7d6c5b4a" https://netbox.lan/api/',
                f'curl -H "Authorization: Token {M}" https://netbox.lan/api/',
            ),
            ("authorization: Bot MTk4NjIyNDgz.Cl2FMQ", f"authorization: Bot {M}"),
            ("Authorization: token ab12", f"Authorization: token {M}"),
            ('{"Authorization": "abc123def456"}', f'{{"Authorization": "{M}"}}'),
        ],
        ["Authorization: required for /admin", "authorization = denied", "no Authorization header was sent"],
    ),
    "Bearer or Basic credentials": (
        [
            ("failed with Bearer cam-token-7d2q1", f"failed with Bearer {M}"),
            ("sent basic dXNlcjpwYXNzd29yZA== to the proxy", f"sent basic {M} to the proxy"),
        ],
        ["Basic authentication is disabled", "the bearer of this message", "Bearer instructions follow"],
    ),
    "X-...-Key header": (
        [
            (
                "curl -H 'X-Api-Key: k9' https://sonarr.lan/api/v3/series",
                f"curl -H 'X-Api-Key: {M}' https://sonarr.lan/api/v3/series",
            ),
            (
                "X-Auth-Key: 1e2d3c\nX-Auth-Email: admin@example.com",
                f"X-Auth-Key: {M}\nX-Auth-Email: admin@example.com",
            ),
            ("x-gotify-key: AbCd", f"x-gotify-key: {M}"),
            ("X-Hub-Signature-256: sha256=4f2a", f"X-Hub-Signature-256: {M}"),
        ],
        ["X-Request-Id: 4f2a9c07", "X-Auth-Request-User: alice", "X-RateLimit-Remaining: 59"],
    ),
    "secret option": (
        [
            ("mysql --password S3cr3t -h db", f"mysql --password {M} -h db"),
            ("mysql --password=pw1 -h db", f"mysql --password={M} -h db"),
            ("mysqldump --password='pa ss' app", f"mysqldump --password='{M}' app"),
            ("wget --http-passwd=Pw1 https://nas.lan/x", f"wget --http-passwd={M} https://nas.lan/x"),
            ("netbox-sync --token 0123abcd --url https://nb.lan", f"netbox-sync --token {M} --url https://nb.lan"),
            ("radarr-cli --api-key 9f8e7d --apikey=1a2b3c", f"radarr-cli --api-key {M} --apikey={M}"),
            ("tailscale up --auth-key=tskey-auth-k1", f"tailscale up --auth-key={M}"),
            ('oidc --client-secret "s3 cr3t" --issuer x', f'oidc --client-secret "{M}" --issuer x'),
            ('{"command": "mysql --password \\"a b\\" -h db"}', f'{{"command": "mysql --password \\"{M}\\" -h db"}}'),
        ],
        [
            "kubectl apply --token-file /var/run/token --password-file /run/pw",
            "git log --pretty=oneline --max-count=5",
            "docker buildx build --secret id=npmrc,src=/root/.npmrc .",
            "mysql -h db -u app --password -e 'select 1'",
            "ansible-playbook --private-key ~/.ssh/id_ed25519 site.yml",
            "llm --max-tokens 4096 --tokens 12",
        ],
    ),
    "mysql -pPASSWORD": (
        [
            ("mysql -uroot -pS3cr3t app", f"mysql -uroot -p{M} app"),
            (
                "mysqldump -u backup -p'pa ss' --all-databases | gzip",
                f"mysqldump -u backup -p'{M}' --all-databases | gzip",
            ),
            ("mariadb -h db -pHunter22 -e 'show databases'", f"mariadb -h db -p{M} -e 'show databases'"),
            ("docker exec db /usr/bin/mysql -uroot -px1 app", f"docker exec db /usr/bin/mysql -uroot -p{M} app"),
        ],
        [
            "mkdir -p /srv/mysql/data",
            "mysql -h db -u app -p app",
            "ssh -p 2222 root@db && mysql -h db",
            "cp -p my.cnf /etc/mysql/ && mysql -P 3306 -h db",
            "mysql -h db; mkdir -p /tmp/x",
        ],
    ),
    "sshpass -p": (
        [
            ("sshpass -p S3cr3t ssh -p 2222 root@nas", f"sshpass -p {M} ssh -p 2222 root@nas"),
            ("sshpass -v -p'pa ss' rsync -a /srv nas:/backup", f"sshpass -v -p'{M}' rsync -a /srv nas:/backup"),
        ],
        ["sshpass -f ~/.nas-pass ssh -p 2222 root@nas", "sshpass -e ssh -p 22 root@nas"],
    ),
    "openssl pass:PASSWORD": (
        [
            (
                "openssl req -x509 -newkey rsa:4096 -keyout key.pem -passout pass:hunter22 -days 365",
                f"openssl req -x509 -newkey rsa:4096 -keyout key.pem -passout pass:{M} -days 365",
            ),
            ("openssl enc -aes-256-cbc -pass 'pass:a b' -in x", f"openssl enc -aes-256-cbc -pass 'pass:{M}' -in x"),
        ],
        ["openssl enc -pass env:BACKUP_PW -in x", "bypass: on", "Pass: 10 Fail: 2"],
    ),
    "curl user:password": (
        [
            ("curl -u admin:S3cr3t https://nas.lan/api", f"curl -u admin:{M} https://nas.lan/api"),
            ("curl -fsSL --user 'backup:pa ss' https://x.lan", f"curl -fsSL --user 'backup:{M}' https://x.lan"),
            ("curl -sSfu me@example.com:Pw12 https://x.lan", f"curl -sSfu me@example.com:{M} https://x.lan"),
            (
                "curl -x proxy:3128 -U proxyuser:Pr0xy https://x.lan",
                f"curl -x proxy:3128 -U proxyuser:{M} https://x.lan",
            ),
        ],
        [
            "curl -u admin https://nas.lan/api",
            "curl --user-agent 'Mozilla: 5.0' https://x.lan",
            "sort -u users.txt | curl -d @- http://x.lan",
            "curl https://nas.lan:8443/api",
        ],
    ),
    "password in a URL": (
        [
            ("psql postgres://app:Sup3r@db.lan:5432/app", f"psql postgres://app:{M}@db.lan:5432/app"),
            ("REDIS_URL=redis://:r3dis@127.0.0.1:6379/0", f"REDIS_URL=redis://:{M}@127.0.0.1:6379/0"),
            (
                "git clone https://oauth2:glpat-xyz@gitlab.lan/group/repo.git",
                f"git clone https://oauth2:{M}@gitlab.lan/group/repo.git",
            ),
            ("mongodb://u:p@ss@h/db", f"mongodb://u:{M}@h/db"),
        ],
        [
            "https://nas.lan:8443/api?x=1",
            "ssh://git@gitlab.lan:2222/group/repo.git",
            "git@github.com:org/repo.git",
            "http://[::1]:8080/health",
        ],
    ),
    "secret variable": (
        [
            ("PGPASSWORD=pw42 psql -h db -U app", f"PGPASSWORD={M} psql -h db -U app"),
            ("MYSQL_PWD=x1 mysql -h db", f"MYSQL_PWD={M} mysql -h db"),
            ("SSHPASS='pa ss' sshpass -e ssh nas", f"SSHPASS='{M}' sshpass -e ssh nas"),
            ('export GITHUB_TOKEN=abc DB_PASS="x y"', f'export GITHUB_TOKEN={M} DB_PASS="{M}"'),
            (
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                f"aws_secret_access_key = {M}",
            ),
            ("password=foo\tbar", f"password={M}"),
            ("GET /hook?token=t0k HTTP/1.1", f"GET /hook?token={M} HTTP/1.1"),
        ],
        [
            "OLDPWD=/home/me PWD=/srv",
            "BYPASS_CACHE=1 make",
            "max_token=4096 LLM_MAX_TOKEN=8192",
            "GOOGLE_APPLICATION_CREDENTIALS=/etc/gcp.json",
            "DB_PASSWORD_FILE=/run/secrets/db",
        ],
    ),
    "secret name and value": (
        [
            ('config: {"api_key": "abcdef123456", "region": "eu"}', f'config: {{"api_key": "{M}", "region": "eu"}}'),
            ("password: swordfish99", f"password: {M}"),
            ("Private-Token: abcdef12", f"Private-Token: {M}"),
            ("credential: hunter2hunter2\tmore", f"credential: {M}"),
        ],
        ["token budget 4000", '{"max_tokens": 128000}', "password: none", "token: 4000"],
    ),
    "JWT": (
        [
            (f"id_token {JWT} end", f"id_token {M} end"),
            (f"jwe {JWT}.aXY.Y2lwaGVy rest", f"jwe {M} rest"),
        ],
        ["eyJhbGciOiJIUzI1NiJ9 alone", "heyJude.mp3.bak", "the eyJ prefix"],
    ),
    "sk- API key": (
        [
            (f"key is {fake('sk-proj-', 48)}.", f"key is {M}."),
            (f"{fake('sk-ant-api03-', 40)} was revoked", f"{M} was revoked"),
            (f"openrouter: {fake('sk-or-v1-', 64, HEX)}", f"openrouter: {M}"),
        ],
        ["sk-learn-documentation-pages", "disk-usage-report-2024-and-more", "task-runner-0001-abcdefghijklmnop"],
    ),
    "Google API key": ([(f"maps {fake('AIza', 35)}", f"maps {M}")], ["AIzawesome", "see AIza keys"]),
    "xAI API key": ([(f"grok {fake('xai-', 80)}", f"grok {M}")], ["xai-grok-2", "xai-org/grok-1"]),
    "Groq API key": ([(f"groq {fake('gsk_', 52)}", f"groq {M}")], ["gsk_test", "gsk_ prefix"]),
    "Perplexity API key": ([(f"{fake('pplx-', 48)}", M)], ["pplx-api docs", "pplx-70b-online"]),
    "Hugging Face token": ([(f"HF {fake('hf_', 34)} ok", f"HF {M} ok")], ["hf_transfer", "hf_hub_download"]),
    "GitHub fine-grained token": (
        [(f"gh {fake('github_pat_', 82)}", f"gh {M}")],
        ["github_pat_example", "github_pat_ tokens"],
    ),
    "Vigilus API token": (
        [
            (f"curl -H 'X: {fake('vgl_', 43, URLSAFE)}' api", f"curl -H 'X: {M}' api"),
            (f"token={fake('vgl_', 43)}", f"token={M}"),
        ],
        ["vgl_token docs", "the vgl_ prefix", f"x{fake('vgl_', 43)}", "vgl_short-0123"],
    ),
    "Stripe key": (
        [
            (f"{fake('sk_live_', 99)} live", f"{M} live"),
            (f"restricted {fake('rk_test_', 24)}", f"restricted {M}"),
            (f"webhook {fake('whsec_', 32)}", f"webhook {M}"),
        ],
        ["sk_live_mode", fake("pk_live_", 24), "task_live_0123456789abcdef"],
    ),
    "AWS access key id": (
        [
            ("aws_access_key_id AKIAIOSFODNN7EXAMPLE", f"aws_access_key_id {M}"),
            (f"session {fake('ASIA', 16, UPPER)},", f"session {M},"),
        ],
        ["Asia/Tokyo", "ASIAN markets", "XAKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE0"],
    ),
    "GitHub token": (
        [(f"{fake('ghp_', 36)}", M), (f"app {fake('ghs_', 36)} expired", f"app {M} expired")],
        ["ghp_short", "the ghp_ prefix", fake("ghp_", 40)],
    ),
    "GitLab token": (
        [(f"{fake('glpat-', 20)} ok", f"{M} ok"), (f"runner {fake('glrt-', 24)}", f"runner {M}")],
        ["glpat-short", "glrt-runner docs"],
    ),
    "Slack token or webhook": (
        [
            ("xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp sent", f"{M} sent"),
            ("POST https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX", f"POST {M}"),
        ],
        ["xoxo, gossip girl", "https://hooks.slack.com/docs"],
    ),
    "SendGrid API key": (
        [(f"{fake('SG.', 22)}.{fake('', 43)}", M)],
        ["SG.1 ratio", "SG.mail.send"],
    ),
    "PyPI token": ([(f"twine {fake('pypi-AgEIcHlwaS5vcmc', 80)}", f"twine {M}")], ["pypi-simple index", "pypi-AgE"]),
    "Square OAuth secret": ([(f"{fake('sq0csp-', 43)}", M)], ["sq0csp-x", "sq0csp- secrets"]),
}

# What tools print every day: none of it may change.
ORDINARY = [
    "mkdir -p /srv/backup && cp -p a b && ssh -p 2222 nas01 uptime",
    "docker run -d -p 80:80 -p 443:443 --name web nginx:1.27",
    "kubectl create token --token-file /var/run/secrets/token",
    "git log --pretty=format:%h --max-count=10",
    '{"max_tokens": 4096, "temperature": 0.2} max_tokens=4096',
    "curl -fsSL https://get.docker.com -o get-docker.sh && open https://nas.lan:8443/ui?tab=1",
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  image.tar",
    "container 123e4567-e89b-12d3-a456-426614174000 started",
    "sshd[812]: Accepted publickey for root from 192.168.1.20 port 52514 ssh2: ED25519 SHA256:Xb1q4f",
    "root      1234  0.0  0.1 /usr/sbin/mysqld --basedir=/usr --datadir=/var/lib/mysql --plugin-dir=/usr/lib/mysql",
    "PasswordAuthentication no\nPubkeyAuthentication yes\nAuthorizedKeysFile .ssh/authorized_keys",
    "apt upgrade -y on nas01 finished: 12 packages, token budget 4000",
]


def _positives() -> list[tuple[str, str, str]]:
    return [(rule, text, masked) for rule, (positives, _) in CASES.items() for text, masked in positives]


def _negatives() -> list[tuple[str, str]]:
    return [(rule, text) for rule, (_, negatives) in CASES.items() for text in negatives]


def test_every_rule_has_positive_and_negative_examples() -> None:
    from vigilus.secret_rules import RULES

    assert [rule.name for rule in RULES] == list(CASES)
    for name, (positives, negatives) in CASES.items():
        assert positives and negatives, name


@pytest.mark.parametrize(("rule", "text", "masked"), _positives(), ids=lambda v: v if len(v) < 40 else v[:40])
def test_the_secret_is_masked_and_the_rest_of_the_text_kept(rule: str, text: str, masked: str) -> None:
    assert redact(text) == masked


@pytest.mark.parametrize(("rule", "text", "masked"), _positives(), ids=lambda v: v if len(v) < 40 else v[:40])
def test_each_rule_masks_its_own_examples_alone(rule: str, text: str, masked: str) -> None:
    """The rule named is the one that finds the secret (another rule catching it by chance does not count)."""
    from vigilus.secret_rules import RULES

    assert {r.name: r for r in RULES}[rule].apply(text) == masked


@pytest.mark.parametrize(("rule", "text"), _negatives(), ids=lambda v: v if len(v) < 40 else v[:40])
def test_what_only_looks_like_a_secret_is_left_alone(rule: str, text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize("text", ORDINARY, ids=lambda v: v[:40])
def test_ordinary_tool_output_is_left_alone(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(("rule", "text", "masked"), _positives(), ids=lambda v: v if len(v) < 40 else v[:40])
def test_redacting_twice_changes_nothing_more(rule: str, text: str, masked: str) -> None:
    """A text is redacted again on its way (a tool's result, then its audit entry, then a log line)."""
    assert redact(redact(text)) == redact(text)


def test_a_run_sees_the_mask_where_the_password_was() -> None:
    """What a lenient Operator's `mysql --password S ...` call leaves in its stored arguments and its result."""
    arguments = {"command": "mysql --password S3cr3t-Pw -h db -e 'select 1'", "env": {"PGPASSWORD": "pg-Pw1"}}
    assert redact_json(arguments) == {"command": f"mysql --password {M} -h db -e 'select 1'", "env": {"PGPASSWORD": M}}
    result = "ERROR 1045 (28000): Access denied (using password: YES) for mysql -uroot -pS3cr3t-Pw"
    assert redact(result) == f"ERROR 1045 (28000): Access denied (using password: YES) for mysql -uroot -p{M}"


def test_a_text_whose_lowercase_is_longer_is_masked_all_the_same() -> None:
    """`İ`.lower() is two characters: the rules for names in any case then run on the text itself."""
    text = "İstanbul: PGPASSWORD=pw42 psql -h db && curl -H 'X-API-KEY: k9' https://x.lan"
    assert len(text.lower()) != len(text)
    assert redact(text) == f"İstanbul: PGPASSWORD={M} psql -h db && curl -H 'X-API-KEY: {M}' https://x.lan"


def test_a_long_text_is_masked_everywhere() -> None:
    """Past the memo's length (512 characters) and with secrets far apart."""
    text = "mysql -uroot -pS3cr3t app\n" + "ok\n" * 400 + "curl -u admin:Pw9 https://nas.lan\n"
    assert redact(text) == f"mysql -uroot -p{M} app\n" + "ok\n" * 400 + f"curl -u admin:{M} https://nas.lan\n"


def test_a_value_inside_json_text_leaves_the_json_valid() -> None:
    """A header quoted inside a JSON string (`\\"Authorization: Token V\\"`): the mask stops before the backslash of
    the escaped quote, so what is stored or logged still parses."""
    text = json.dumps(
        {"command": 'curl -H "Authorization: Token abcdef123456" http://nas', "b": "--password=hunter2xyz"}
    )
    masked = redact(text)
    assert "abcdef123456" not in masked and "hunter2xyz" not in masked
    assert json.loads(masked) == {
        "command": f'curl -H "Authorization: Token {MASK}" http://nas',
        "b": f"--password={MASK}",
    }
