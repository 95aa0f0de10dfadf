"""Per-call intent of the docker server's tools: creating or running a container is exec, and elevate when
the container reaches into the host. Pure (no engine, no Docker SDK): the gateway asks it before a call."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tools.choices import Intent

# What the engine takes as a named volume; any other volume source is a path on the host.
_VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_VOLUME_MODES = {"ro", "rw", "z", "Z", "shared", "slave", "private", "rshared", "rslave", "rprivate", "nocopy"}
_HOST_NAMESPACE_OPTIONS = {
    "network_mode": "the host's network stack",
    "pid_mode": "the host's process table",
    "ipc_mode": "the host's IPC namespace",
    "uts_mode": "the host's hostname (UTS namespace)",
    "userns_mode": "the host's user namespace",
}
_HARMLESS_SECURITY_OPTIONS = {"no-new-privileges", "no-new-privileges=true", "no-new-privileges:true"}


# --- Per-call intent ------------------------------------------------------------------------------

CONTAINER_CREATING_TOOLS = ("run_container", "create_container")


def call_intent(tool_name: str, arguments: dict[str, Any]) -> tuple[Intent, str] | None:
    """The intent a call's arguments demand: creating a container is exec, and elevate when the container
    reaches into the host. Pure and side-effect free; arguments that cannot be checked count as elevate."""
    if tool_name not in CONTAINER_CREATING_TOOLS:
        return None
    try:
        reasons = elevation_reasons(arguments)
    except (TypeError, ValueError, AttributeError) as exc:
        return Intent.ELEVATE, f"the container settings could not be checked ({exc}), so they count as root-level"
    if reasons:
        return Intent.ELEVATE, "root-level access to the host: " + "; ".join(reasons)
    return Intent.EXEC, f"runs a program from image {arguments.get('image', '?')} in a new container"


def elevation_reasons(arguments: dict[str, Any]) -> list[str]:
    """Why a container with these settings reaches into the host (empty: it does not). Raises ValueError
    for settings that cannot be understood (a malformed volume), which the caller treats as elevate."""
    reasons = []
    if _truthy(arguments.get("privileged")):
        reasons.append("a privileged container (every device and capability of the host)")
    for spec in _as_list(arguments.get("volumes")):
        volume = parse_volume(spec)
        if volume.host_path:
            reasons.append(f"mounts the host path {volume.source} at {volume.target}")
    capabilities = _as_list(arguments.get("cap_add"))
    if capabilities:
        reasons.append("adds capabilities " + ", ".join(str(c) for c in capabilities))
    devices = _as_list(arguments.get("devices"))
    if devices:
        reasons.append("passes host devices " + ", ".join(str(d) for d in devices))
    for option, what in _HOST_NAMESPACE_OPTIONS.items():
        value = arguments.get(option)
        if value is not None and str(value).strip().lower() == "host":
            reasons.append(f"{option}=host shares {what}")
    loosened = [
        str(o) for o in _as_list(arguments.get("security_opt")) if str(o).strip() not in _HARMLESS_SECURITY_OPTIONS
    ]
    if loosened:
        reasons.append("security options " + ", ".join(loosened))
    return reasons


def _truthy(value: Any) -> bool:
    """Only an explicit false is false: a string such as "false" still counts (the safe reading)."""
    return value not in (None, False, 0, "")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str | bytes | dict):
        return [value]
    return list(value)


@dataclass(frozen=True)
class VolumeSpec:
    """One `SOURCE:TARGET[:MODE]` volume: a named volume, or (host_path) a directory or file of the host."""

    source: str
    target: str
    mode: str
    host_path: bool

    @property
    def bind(self) -> str:
        return f"{self.source}:{self.target}:{self.mode}" if self.mode else f"{self.source}:{self.target}"


def parse_volume(spec: Any) -> VolumeSpec:
    """Parse `SOURCE:TARGET[:MODE]` the way the engine reads it; ValueError for anything else."""
    if not isinstance(spec, str) or not spec or "\0" in spec:
        raise ValueError(f"volume {spec!r} is not a SOURCE:TARGET[:MODE] string")
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise ValueError(f"volume {spec!r} is not SOURCE:TARGET[:MODE] (a volume name or host path, then a path)")
    source, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else ""
    if not target.startswith("/"):
        raise ValueError(f"volume {spec!r}: the target {target!r} must be an absolute path inside the container")
    if mode and not set(mode.split(",")) <= _VOLUME_MODES:
        raise ValueError(f"volume {spec!r}: unknown mode {mode!r} (use ro or rw)")
    return VolumeSpec(source=source, target=target, mode=mode, host_path=not _VOLUME_NAME.match(source))
