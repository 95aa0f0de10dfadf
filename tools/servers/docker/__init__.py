"""The `docker` built-in server: containers, compose projects, images, volumes and networks of a Docker
(or Docker-API compatible, e.g. podman) engine, on the local socket or a remote daemon.

Which engine: every tool takes an optional `endpoint`, the name of a DockerEndpoint row (Infrastructure
in the dashboard). Without one: the default endpoint, else the only one, else, when none is configured,
the local engine as the Docker CLI would find it (DOCKER_HOST, else unix:///var/run/docker.sock).
Clients are kept per endpoint within the process and rebuilt when the endpoint row changes.

Intent: reads are annotated read-only; start/stop/pull/create change state (write); removals are
destructive writes. Creating or running a container runs a program, so `call_intent` raises those calls
to exec, and to elevate when the container gets root-level reach into the host (privileged, host paths
mounted, added capabilities, host devices, host namespaces, loosened security options). The volume
parsing used to classify is the parsing used to create, so what was classified is what runs.

Nothing here pulls an image behind the caller's back: a missing image is an error that says to pull it
(a separate, visible call), and compose_up never reads a compose file (it could define a privileged
service that no classification saw): it starts the project's existing containers.

Modules: `server` (the tools and their annotations), `intent` (per-call intent, pure), `engine` (endpoints,
clients, TLS files), `schema` (argument types, result models), `containers`, `running`, `compose`, `resources`.
"""
