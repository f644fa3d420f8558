#!/usr/bin/env python3
"""Structural checks of the deployment files, run by scripts/container-test.

  check_deploy.py dockerfile  REPO RUSTC_VERSION   (e.g. 1.95.0)
  check_deploy.py image       INSPECT_JSON            (`podman image inspect` output)
  check_deploy.py compose     REPO BASE_CONFIG EMULATOR_CONFIG
                              (BASE/EMULATOR_CONFIG: `docker-compose config` output of
                               docker-compose.yml alone and with deploy/compose/emulator.yml)
  check_deploy.py kubernetes  REPO
  check_deploy.py env compose CONFIG | env kubernetes REPO   (prints KEY=VALUE lines)
  check_deploy.py inside-path ROOTFS PATH   (PATH with the image's symlinks resolved)

Each check prints one line, "ok: ..." or "FAIL: ..."; the exit status is 1 when any failed.
Needs PyYAML (kubernetes-validate, which the script installs, brings it).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import re
import shlex
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import yaml

FAILED: list[str] = []

# Credential env vars that hold secrets themselves: never in a file, an image or a manifest.
SECRET_VARS = {"VONAGE_PRIVATE_KEY", "OPENTOK_API_SECRET"}
CREDENTIAL_VARS = SECRET_VARS | {
    "VONAGE_APPLICATION_ID",
    "VONAGE_PRIVATE_KEY_FILE",
    "OPENTOK_API_KEY",
    "OPENTOK_API_SECRET_FILE",
}
BINARY = "/usr/local/bin/vonage-sessions"


def check(condition: bool, what: str, detail: str = "") -> bool:
    if condition:
        print(f"    ok: {what}")
    else:
        message = f"{what}{': ' + detail if detail else ''}"
        print(f"    FAIL: {message}")
        FAILED.append(message)
    return condition


def finish() -> int:
    if FAILED:
        print(f"    {len(FAILED)} check(s) failed", file=sys.stderr)
        return 1
    return 0


def service_config(repo: Path) -> dict:
    """default.toml overlaid with production.toml: what the image runs with."""
    merged: dict = {}
    for name in ("default.toml", "production.toml"):
        with open(repo / "config" / name, "rb") as handle:
            for section, values in tomllib.load(handle).items():
                merged.setdefault(section, {}).update(values)
    return merged


def shutdown_budget_ms(repo: Path, env: dict[str, str]) -> tuple[int, int]:
    server = service_config(repo)["server"]
    drain = int(env.get("VONAGE_SESSIONS__SERVER__DRAIN_DELAY_MS", server["drain_delay_ms"]))
    timeout = int(
        env.get("VONAGE_SESSIONS__SERVER__SHUTDOWN_TIMEOUT_MS", server["shutdown_timeout_ms"])
    )
    return drain, timeout


# --- Dockerfile -------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, rest = current.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    return instructions


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's .dockerignore rule, simplified: the last pattern matching the path or one of
    its parent directories wins; '!' re-includes."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatchcase(candidate, pattern) for candidate in candidates):
            excluded = not negate
    return excluded


def cmd_dockerfile(repo: Path, rustc_version: str) -> int:
    instructions = dockerfile_instructions((repo / "Dockerfile").read_text())
    froms = [args for keyword, args in instructions if keyword == "FROM"]
    check(len(froms) >= 2, "Dockerfile is multi-stage", f"{len(froms)} FROM line(s)")
    builder = froms[0].split()[0] if froms else ""
    runtime = froms[-1].split()[0] if froms else ""
    check(
        re.fullmatch(rf"(docker\.io/(library/)?)?rust:{re.escape(rustc_version)}-slim-\w+", builder)
        is not None,
        f"build stage is the official Rust image pinned to this toolchain ({builder})",
        f"expected rust:{rustc_version}-slim-<debian> to match `rustc --version`",
    )
    check(
        runtime.startswith("gcr.io/distroless/cc-debian") and runtime.endswith(":nonroot")
        or runtime == "scratch",
        f"runtime stage is distroless nonroot ({runtime})",
    )
    keywords = [keyword for keyword, _ in instructions]
    check("ARG" not in keywords, "no build argument (ARG) that could carry a secret")
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    runtime_part = instructions[last_from:]

    def runtime_args(keyword: str) -> list[str]:
        return [args for k, args in runtime_part if k == keyword]

    envs = " ".join(runtime_args("ENV"))
    check(
        re.search(r"\bVONAGE_SESSIONS_ENV[= ]production\b", envs) is not None,
        "runtime sets VONAGE_SESSIONS_ENV=production",
    )
    leaked = [name for name in CREDENTIAL_VARS if name in " ".join(a for k, a in instructions if k == "ENV")]
    check(not leaked, "no credential variable set in any ENV", ", ".join(leaked))
    check(
        any(re.match(r"(--\S+\s+)*config\s", args) for args in runtime_args("COPY")),
        "runtime copies config/",
    )
    workdir = runtime_args("WORKDIR")
    check(bool(workdir), f"runtime WORKDIR is set ({workdir[-1] if workdir else '-'}) so config/ is found")
    for keyword in ("ENTRYPOINT", "CMD"):
        args = runtime_args(keyword)
        try:
            value = json.loads(args[-1]) if args else None
        except json.JSONDecodeError:
            value = None
        check(isinstance(value, list), f"{keyword} is exec form (JSON array)", args[-1] if args else "missing")
    users = runtime_args("USER")
    user = users[-1].split(":")[0] if users else ""
    check(user not in ("", "0", "root"), f"runtime USER is not root ({users[-1] if users else 'unset'})")
    check("8080" in " ".join(runtime_args("EXPOSE")), "EXPOSE 8080")
    health = runtime_args("HEALTHCHECK")
    health_cmd = health[-1].split("CMD", 1)[-1].strip() if health else ""
    try:
        health_argv = json.loads(health_cmd)
    except json.JSONDecodeError:
        health_argv = None
    check(
        health_argv == [BINARY, "healthcheck"],
        "HEALTHCHECK runs `vonage-sessions healthcheck` in exec form (no shell, no curl)",
        health_cmd or "missing",
    )
    with open(repo / "Cargo.toml", "rb") as handle:
        manifest = tomllib.load(handle)
    build_script = manifest.get("package", {}).get("build")
    if build_script is None and (repo / "build.rs").exists():
        build_script = "build.rs"
    if build_script:
        copied = " ".join(args for keyword, args in instructions if keyword == "COPY")
        check(build_script in copied, f"the Dockerfile copies the build script {build_script}")
    for target in manifest.get("bin", []) + [manifest.get("lib", {})]:
        path = target.get("path")
        check(path is None or path.startswith("src/"),
              f"target {target.get('name', 'lib')} lives under src/ (copied into the build)", str(path))
    ignore_file = repo / ".dockerignore"
    if check(ignore_file.is_file(), ".dockerignore exists"):
        patterns = [
            line.strip()
            for line in ignore_file.read_text().splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
        for path in (".env", ".env.local", "target/release/vonage-sessions", ".git/config",
                     "tests/fixtures/application_private_key.pem", "node_modules/x"):
            check(dockerignore_excludes(patterns, path), f".dockerignore keeps {path} out of the context")
        for path in ("Cargo.toml", "Cargo.lock", "src/main.rs", "config/production.toml"):
            check(not dockerignore_excludes(patterns, path), f".dockerignore lets {path} in")
    return finish()


# --- the built image ---------------------------------------------------------------------------


def cmd_image(inspect_json: Path) -> int:
    image = json.loads(inspect_json.read_text())[0]
    config = image.get("Config", {})
    user = str(config.get("User", ""))
    uid = user.split(":")[0]
    check(uid not in ("", "0", "root"), f"image user is not root (User={user!r})")
    check(uid == "65532", f"image user is distroless nonroot 65532 (User={user!r})")
    check(config.get("Entrypoint") == [BINARY], f"ENTRYPOINT is {config.get('Entrypoint')}")
    check(config.get("Cmd") == ["serve"], f"CMD is {config.get('Cmd')}")
    check(config.get("WorkingDir") == "/app", f"WorkingDir is {config.get('WorkingDir')}")
    check("8080/tcp" in (config.get("ExposedPorts") or {}), "port 8080/tcp is exposed")
    env = dict(item.split("=", 1) for item in config.get("Env", []))
    check(env.get("VONAGE_SESSIONS_ENV") == "production", "VONAGE_SESSIONS_ENV=production in the image")
    leaked = sorted(CREDENTIAL_VARS & env.keys())
    check(not leaked, "no credential in the image's environment", ", ".join(leaked))
    health = (image.get("Healthcheck") or config.get("Healthcheck") or {}).get("Test")
    check(health == ["CMD", BINARY, "healthcheck"], f"HEALTHCHECK is {health}")
    history = " ".join(entry.get("created_by", "") for entry in image.get("History", []))
    check(re.search(r"\|\d+ ", history) is None, "no build argument recorded in the image history")
    return finish()


# --- docker-compose ----------------------------------------------------------------------------


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def duration_s(value: str) -> float:
    total, units = 0.0, {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(value)):
        total += float(number) * units[unit]
    return total


def published_ports(service: dict) -> list:
    ports = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            if port.get("published"):
                ports.append(port)
        elif ":" in str(port):
            ports.append(port)
    return ports


def cmd_compose(repo: Path, base_file: Path, emulator_file: Path) -> int:
    base = yaml.safe_load(base_file.read_text())["services"]
    with_emulator = yaml.safe_load(emulator_file.read_text())["services"]
    raw_files = [repo / "docker-compose.yml", repo / "deploy/compose/emulator.yml"]
    raw = [yaml.safe_load(path.read_text()) or {} for path in raw_files]

    for path, document in zip(raw_files, raw):
        for name, service in (document.get("services") or {}).items():
            literal = sorted(CREDENTIAL_VARS & env_of(service).keys())
            check(
                not literal,
                f"{path.relative_to(repo)}: {name} has no credential written in the file",
                ", ".join(literal),
            )
    app_raw = raw[0]["services"].get("app", {})
    env_files = app_raw.get("env_file") or raw[0].get("x-vonage-sessions", {}).get("env_file")
    env_files = [env_files] if isinstance(env_files, str) else env_files or []
    check(".env" in env_files, "app takes its credentials from .env (env_file)", str(env_files))

    app = base.get("app")
    if not check(app is not None, "service app exists"):
        return finish()
    check(bool(app.get("build")), "app builds the Dockerfile (build:)")
    replicas = (app.get("deploy") or {}).get("replicas", app.get("scale", 1))
    check(int(replicas) >= 2, f"app runs {replicas} replicas")
    env = env_of(app)
    check(env.get("VONAGE_SESSIONS__AUTH__MODE") == "anonymous", "app sets auth.mode")
    check(env.get("VONAGE_SESSIONS__ROOMS__STORE") == "redis", "app keeps rooms in Redis")
    redis_host = urlparse(env.get("VONAGE_SESSIONS__ROOMS__REDIS_URL", "")).hostname
    check(redis_host in base, f"the replicas share the Redis service {redis_host!r}")
    check("VIDEO_API_URL" not in env, "without the emulator file the service talks to Vonage")
    check("emulator" not in base, "without the emulator file there is no emulator service")
    drain, timeout = shutdown_budget_ms(repo, env)
    grace = duration_s(app.get("stop_grace_period", "10s"))
    check(grace * 1000 > drain, f"app stop_grace_period {grace:g}s is longer than the {drain} ms drain")

    for variant, services in (("stack", base), ("stack with the emulator", with_emulator)):
        for name, service in services.items():
            test = (service.get("healthcheck") or {}).get("test")
            check(
                bool(test) and test not in (["NONE"], "NONE") and not service["healthcheck"].get("disable"),
                f"{variant}: {name} has a healthcheck",
            )
            for dependency, spec in (service.get("depends_on") or {}).items():
                condition = spec.get("condition") if isinstance(spec, dict) else None
                check(
                    condition == "service_healthy",
                    f"{variant}: {name} waits for {dependency} to be healthy",
                    f"condition {condition}",
                )
        publishing = {name: published_ports(service) for name, service in services.items()}
        publishing = {name: ports for name, ports in publishing.items() if ports}
        total = sum(len(ports) for ports in publishing.values())
        check(
            total == 1 and "app" not in publishing,
            f"{variant}: one published port, on the proxy, not on a replica",
            str(publishing),
        )
    proxy = base.get("proxy", {})
    check("app" in (proxy.get("depends_on") or {}), "proxy waits for the replicas")
    mounted = [str(v.get("source") if isinstance(v, dict) else v).split(":")[0] for v in proxy.get("volumes", [])]
    check(any(Path(m).name == "haproxy.cfg" for m in mounted), "proxy mounts deploy/compose/haproxy.cfg")
    # The replicas believe X-Forwarded-For from the proxy's fixed address only.
    haproxy_cfg = (repo / "deploy/compose/haproxy.cfg").read_text()
    directives = {line.split("#")[0].strip() for line in haproxy_cfg.splitlines()}
    check("option forwardfor" in directives, "haproxy.cfg appends the caller's address (option forwardfor)")
    check(
        "option redispatch 1" in directives and any(d.startswith("retries ") for d in directives),
        "haproxy.cfg retries a refused connection on another replica (retries, option redispatch 1)",
    )
    networks = proxy.get("networks") or {}
    proxy_address = ((networks.get("default") or {}) if isinstance(networks, dict) else {}).get("ipv4_address")
    try:
        trusted = json.loads(env.get("VONAGE_SESSIONS__AUTH__TRUSTED_PROXIES", "[]"))
    except ValueError:
        trusted = None
    check(
        bool(proxy_address) and trusted == [proxy_address],
        "app trusts X-Forwarded-For from the proxy's fixed address alone",
        f"proxy ipv4_address {proxy_address}, app auth.trusted_proxies {trusted}",
    )
    pools = ((yaml.safe_load(base_file.read_text()).get("networks") or {}).get("default") or {}).get("ipam", {}).get("config") or [{}]
    if proxy_address and pools[0].get("subnet") and pools[0].get("ip_range"):
        address = ipaddress.ip_address(proxy_address)
        check(
            address in ipaddress.ip_network(pools[0]["subnet"]) and address not in ipaddress.ip_network(pools[0]["ip_range"]),
            "the proxy's address is in the network's subnet, outside the ip_range other containers get addresses from",
            f"{proxy_address}, {pools[0]}",
        )
    else:
        check(False, "the default network has an ipam subnet and ip_range", str(pools))

    emulator = with_emulator.get("emulator")
    if check(emulator is not None, "the emulator file adds an emulator service"):
        command = emulator.get("command") or []
        command = shlex.split(command) if isinstance(command, str) else command
        check(command[:1] == ["emulator"], f"emulator runs `vonage-sessions emulator` ({command})")
        check(emulator.get("image") == app.get("image"), "emulator uses the service's own image")
        listen = command[command.index("--listen") + 1] if "--listen" in command else ""
        emu_env = env_of(with_emulator["app"])
        url = urlparse(emu_env.get("VIDEO_API_URL", ""))
        check(
            url.hostname == "emulator" and str(url.port) == listen.rsplit(":", 1)[-1],
            f"app's VIDEO_API_URL points at the emulator ({emu_env.get('VIDEO_API_URL')}, listen {listen})",
        )
        check(
            (with_emulator["app"].get("depends_on") or {}).get("emulator", {}).get("condition")
            == "service_healthy",
            "app waits for the emulator to be healthy",
        )
        emu_raw = (raw[1].get("services") or {}).get("emulator", {})
        emu_env_files = emu_raw.get("env_file")
        emu_env_files = [emu_env_files] if isinstance(emu_env_files, str) else emu_env_files or []
        check(".env" in emu_env_files, "emulator accepts the same credentials (env_file .env)")

    example = repo / ".env.example"
    values = {}
    for line in example.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    kinds = [
        kind
        for kind, needed in (
            ("legacy", {"OPENTOK_API_KEY"}),
            ("application", {"VONAGE_APPLICATION_ID"}),
        )
        if needed & values.keys()
    ]
    check(len(kinds) == 1, f".env.example sets exactly one credential kind ({', '.join(kinds) or 'none'})")
    gitignore = (repo / ".gitignore").read_text().split()
    check(".env" in gitignore or "/.env" in gitignore, ".env is git-ignored")
    return finish()


# --- Kubernetes --------------------------------------------------------------------------------


def port_of(container: dict, port) -> int | None:
    for declared in container.get("ports", []):
        if port in (declared.get("name"), declared.get("containerPort")):
            return declared.get("containerPort")
    return None


def cmd_kubernetes(repo: Path) -> int:
    directory = repo / "deploy" / "kubernetes"
    files = sorted(p for p in directory.glob("*.y*ml"))
    documents: list[tuple[Path, dict]] = []
    for path in files:
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                documents.append((path, document))
    kustomization = [d for p, d in documents if d.get("kind") == "Kustomization"]
    resources = [(p, d) for p, d in documents if d.get("kind") != "Kustomization"]
    if kustomization:
        listed = set(kustomization[0].get("resources", []))
        on_disk = {p.name for p, _ in resources}
        check(listed == on_disk, "kustomization.yaml lists every manifest", f"{sorted(listed)} vs {sorted(on_disk)}")

    deployments = [d for _, d in resources if d.get("kind") == "Deployment"]
    if not check(len(deployments) == 1, "one Deployment"):
        return finish()
    deployment = deployments[0]
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"].get("labels", {})
    container = pod["containers"][0]
    check(int(deployment["spec"].get("replicas", 1)) >= 2, "at least two replicas")
    image = container.get("image", "")
    check(":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), f"image has a pinned tag ({image})")

    listen_port = int(str(service_config(repo)["server"]["listen"]).rsplit(":", 1)[-1])
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        get = (container.get(probe) or {}).get("httpGet") or {}
        check(get.get("path") == path, f"{probe} is GET {path}", str(get.get("path")))
        check(
            port_of(container, get.get("port")) == listen_port,
            f"{probe} port is the listen port {listen_port}",
            str(get.get("port")),
        )

    env_list = container.get("env", [])
    env = {e["name"]: str(e.get("value", "")) for e in env_list if "value" in e}
    drain, timeout = shutdown_budget_ms(repo, env)
    grace = int(pod.get("terminationGracePeriodSeconds", 30))
    check(
        grace * 1000 > drain + timeout,
        f"terminationGracePeriodSeconds {grace}s is longer than drain {drain} ms + shutdown timeout {timeout} ms",
    )

    resources_spec = container.get("resources") or {}
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            check(resource in (resources_spec.get(kind) or {}), f"resources.{kind}.{resource} is set")

    pod_sc, sc = pod.get("securityContext") or {}, container.get("securityContext") or {}

    def effective(key: str):
        return sc.get(key, pod_sc.get(key))

    check(effective("runAsNonRoot") is True, "runAsNonRoot: true")
    check(effective("runAsUser") not in (0, "0"), f"runAsUser is not 0 ({effective('runAsUser')})")
    check(sc.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem: true")
    check(sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation: false")
    check(sc.get("privileged") is not True, "not privileged")
    check("ALL" in ((sc.get("capabilities") or {}).get("drop") or []), "capabilities: drop ALL")

    names = {e["name"] for e in env_list}
    check(not (SECRET_VARS & names), "no secret passed as an env var (keys and secrets come as *_FILE)",
          ", ".join(sorted(SECRET_VARS & names)))
    literal = [e["name"] for e in env_list if e["name"] in CREDENTIAL_VARS - {"VONAGE_PRIVATE_KEY_FILE", "OPENTOK_API_SECRET_FILE"} and "value" in e]
    check(not literal, "credential identifiers come from the Secret, not literals", ", ".join(literal))
    file_vars = [e for e in env_list if e["name"] in ("VONAGE_PRIVATE_KEY_FILE", "OPENTOK_API_SECRET_FILE")]
    check(len(file_vars) == 1, "exactly one credential file variable (*_FILE)", str([e["name"] for e in file_vars]))
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for variable in file_vars:
        path = variable.get("value", "")
        mounts = [m for m in container.get("volumeMounts", []) if path.startswith(m["mountPath"].rstrip("/") + "/")]
        secret = mounts and "secret" in volumes.get(mounts[0]["name"], {})
        check(bool(secret), f"{variable['name']}={path} is a file from a Secret volume")
        if secret:
            check(mounts[0].get("readOnly") is True, f"the Secret volume is mounted read-only")
            secret_volume = volumes[mounts[0]["name"]]["secret"]
            items = {item["path"] for item in secret_volume.get("items", [])} or None
            relative = path[len(mounts[0]["mountPath"].rstrip("/")) + 1:]
            check(items is None or relative in items, f"the Secret provides {relative}")
            mode = secret_volume.get("defaultMode", 0o644)
            check(
                not mode & 0o007 and (mode & 0o040 and pod_sc.get("fsGroup") or mode & 0o400),
                f"the key file is not world-readable and readable by the service (mode {oct(mode)})",
            )
    secret_refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for e in env_list
        if "secretKeyRef" in (e.get("valueFrom") or {})
    } | {v["secret"]["secretName"] for v in volumes.values() if "secret" in v}
    check(len(secret_refs) == 1, f"credentials come from one Secret ({', '.join(sorted(secret_refs))})")

    services = [d for _, d in resources if d.get("kind") == "Service"]
    if check(len(services) == 1, "one Service"):
        spec = services[0]["spec"]
        selector = spec.get("selector", {})
        check(bool(selector) and selector.items() <= labels.items(), "Service selects the Deployment's pods")
        for port in spec.get("ports", []):
            check(
                port_of(container, port.get("targetPort")) == listen_port,
                f"Service port {port.get('port')} targets the container's {listen_port}",
            )
    for _, budget in ((p, d) for p, d in resources if d.get("kind") == "PodDisruptionBudget"):
        selector = budget["spec"]["selector"].get("matchLabels", {})
        check(selector.items() <= labels.items(), "PodDisruptionBudget selects the Deployment's pods")
    return finish()


# --- the environment a deployment gives the service ----------------------------------------------

TEST_SECRET_VALUE = "5f4b8a2e-6c1d-4e3f-9a0b-7c2d1e4f5a6b"


def cmd_env(kind: str, source: Path) -> int:
    """Prints KEY=VALUE lines: the env of compose's `app` service (from `docker-compose config`
    output, .env included) or of the Kubernetes Deployment's container (values from a Secret
    replaced by a test value), so the script can run `check-config` with it in the image."""
    if kind == "compose":
        env = env_of(yaml.safe_load(source.read_text())["services"]["app"])
    else:
        deployment = next(
            d
            for path in sorted((source / "deploy" / "kubernetes").glob("*.y*ml"))
            for d in yaml.safe_load_all(path.read_text())
            if d and d.get("kind") == "Deployment"
        )
        env = {}
        for item in deployment["spec"]["template"]["spec"]["containers"][0].get("env", []):
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif "secretKeyRef" in (item.get("valueFrom") or {}):
                env[item["name"]] = TEST_SECRET_VALUE
    for key, value in env.items():
        print(f"{key}={value}")
    return 0


def cmd_inside_path(root: Path, path: str) -> int:
    """Prints PATH with the image's own symlinks resolved inside ROOT (the image's mounted file
    system). buildah's chroot isolation resolves a mount target's absolute symlinks (distroless'
    /var/run -> /run) on the host, so the script mounts at the resolved path instead."""
    pending = [part for part in path.split("/") if part]
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            resolved = resolved[:-1]
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                print(f"too many symlinks in {path}", file=sys.stderr)
                return 1
            target = str(candidate.readlink())
            if target.startswith("/"):
                resolved = []
            pending = [p for p in target.split("/") if p] + pending
        else:
            resolved.append(part)
    print("/" + "/".join(resolved))
    return 0


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    command, args = argv[1], argv[2:]
    if command == "dockerfile" and len(args) == 2:
        return cmd_dockerfile(Path(args[0]), args[1])
    if command == "image" and len(args) == 1:
        return cmd_image(Path(args[0]))
    if command == "compose" and len(args) == 3:
        return cmd_compose(Path(args[0]), Path(args[1]), Path(args[2]))
    if command == "env" and len(args) == 2 and args[0] in ("compose", "kubernetes"):
        return cmd_env(args[0], Path(args[1]))
    if command == "inside-path" and len(args) == 2:
        return cmd_inside_path(Path(args[0]), args[1])
    if command == "kubernetes" and len(args) == 1:
        return cmd_kubernetes(Path(args[0]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
