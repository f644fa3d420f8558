#!/usr/bin/env python3
"""Brings the compose stack up from the compose file itself, without a container engine, and
checks it (scripts/compose-test runs this; see the comment there for why and how).

The topology comes from `docker-compose config` (JSON with `--format json` where the installed
docker-compose has it, else its YAML, which is the same document): every service, its replica
count, image, command, environment (env_file already merged), healthcheck, depends_on, mounted
files, and the default network's subnet, ip_range and fixed ipv4_address. Nothing of the stack
is copied into this script. Each service instance gets its own network namespace, joined to
the others by a bridge in a hub namespace (isolated from the host's network: no route leaves
it), at the address Docker would give it; service names resolve through /etc/hosts of the
namespace (`ip netns exec` mounts /etc/netns/NAME/hosts) and through a small DNS server at
127.0.0.11 for HAProxy's `resolvers docker`, as Docker's embedded DNS does. Services built from
this repository's image run from the real image with `buildah run --isolation chroot --network
host` inside their namespace; `redis:*` and `haproxy:*` run Debian's redis-server and haproxy with
the compose command and the mounted files.

The checks (through HAProxy unless said otherwise): /readyz 200 once both replicas are healthy,
and both in rotation; 100 concurrent joins of one room from 4 callers -> one session at the
emulator, none refused (each caller has its own budget: option forwardfor + the replicas'
auth.trusted_proxies); one caller's creates limited while another's are not, its own
X-Forwarded-For changing nothing, and X-Forwarded-For not believed from a peer that is not the
proxy; SIGTERM to one replica under a load of joins answers no request with an error; stopping
Redis turns both replicas' /readyz to 503 and their joins to 503 store_unavailable, and starting
it again recovers both.

Run inside the hub namespace (scripts/compose-test does): the test's own HTTP client reaches
every instance on the bridge.
"""

import ipaddress
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import http.client as httpclient
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

HUB = os.environ["COMPOSE_TEST_HUB"]
PREFIX = os.environ.get("COMPOSE_TEST_PREFIX", "vsc")
WORK = os.environ["COMPOSE_TEST_WORK"]
REPO = os.environ["COMPOSE_TEST_REPO"]
IMAGE = os.environ.get("COMPOSE_TEST_IMAGE", "localhost/vonage-sessions:test")
# Source addresses the test sends from, so that the proxy carries several callers.
CLIENTS = 12
BUILDAH = ["buildah", "--storage-driver", "vfs"]
# Development of this script only (never in scripts/test): run the project's services from a
# host binary instead of the image, to try the orchestration without building the image.
HOST_BINARY = os.environ.get("COMPOSE_TEST_HOST_BINARY")


# Keys of the compose file this script does not apply, with the reason (printed every run).
NOT_REPRODUCED = {
    "ports": "no engine maps a host port: the test reaches the proxy's target port at its address",
    "read_only": "buildah run has no read-only root; scripts/container-test checks the service writes nothing to it",
    "security_opt": "no-new-privileges is not applied (buildah run --isolation chroot has no such option)",
    "restart": "nothing restarts a service that exits; the test restarts what it stops itself",
    "stop_grace_period": "the test waits up to 40 s after SIGTERM (longer than every grace period in the file)",
}


def step(text):
    print(f"\n==> {text}", flush=True)


def ok(text):
    print(f"    ok: {text}", flush=True)


def note(text):
    print(f"    {text}", flush=True)


class Failure(Exception):
    pass


def fail(text):
    raise Failure(text)


def run(*args, check=True, **kwargs):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, **kwargs)


# ----------------------------------------------------------------------------------------------
# The compose file, read by docker-compose itself.


def compose_config(directory):
    files = ["-f", "docker-compose.yml", "-f", "deploy/compose/emulator.yml"]
    as_json = run("docker-compose", *files, "config", "--format", "json", cwd=directory, check=False)
    if as_json.returncode == 0 and as_json.stdout.lstrip().startswith("{"):
        note("docker-compose config --format json")
        return json.loads(as_json.stdout)
    as_yaml = run("docker-compose", *files, "config", cwd=directory, check=False)
    if as_yaml.returncode != 0:
        fail(f"docker-compose config failed: {as_yaml.stderr.strip()}")
    import yaml  # docker-compose v1 (Debian's) has no --format json; its YAML is the same document

    version = run("docker-compose", "version", "--short", check=False).stdout.strip()
    note(f"docker-compose {version} has no `config --format json`: read its YAML output instead")
    return yaml.safe_load(as_yaml.stdout)


def seconds(value, default):
    if value is None:
        return default
    value = str(value)
    if value.endswith("ms"):
        return float(value[:-2]) / 1000
    if value.endswith("s"):
        return float(value[:-1])
    if value.endswith("m"):
        return float(value[:-1]) * 60
    return float(value)


def start_order(services):
    """Services in depends_on order (dependencies first)."""
    order, seen = [], set()

    def visit(name, path=()):
        if name in seen:
            return
        if name in path:
            fail(f"depends_on cycle through {name}")
        for dependency in (services[name].get("depends_on") or {}):
            visit(dependency, path + (name,))
        seen.add(name)
        order.append(name)

    for name in sorted(services):
        visit(name)
    return order


# ----------------------------------------------------------------------------------------------
# Network: a namespace per instance, a bridge in the hub.


class Network:
    """The compose project's default network: its subnet and ip_range (ipam) and the services'
    fixed ipv4_address come from the compose file, as Docker would assign them; without an
    ipam subnet, 127.77.0.0/24. The hub (the test, standing for the host) holds the gateway
    address and a few client addresses, outside ip_range."""

    def __init__(self, config):
        ipam = ((config.get("networks") or {}).get("default") or {}).get("ipam") or {}
        pools = ipam.get("config") or [{}]
        self.subnet = ipaddress.ip_network(pools[0].get("subnet") or "127.77.0.0/24")
        hosts = list(self.subnet.hosts())
        self.gateway = ipaddress.ip_address(pools[0].get("gateway") or hosts[0])
        dynamic = ipaddress.ip_network(pools[0].get("ip_range") or str(self.subnet))
        self.static = {}
        for name, spec in config["services"].items():
            networks = spec.get("networks") or {}
            address = ((networks.get("default") or {}) if isinstance(networks, dict) else {}).get("ipv4_address")
            if address:
                self.static[name] = ipaddress.ip_address(address)
        taken = {self.gateway, *self.static.values()}
        self.free = [a for a in dynamic.hosts() if a not in taken]
        # Callers of the test, each its own source address: outside ip_range, as the host's
        # clients are outside the network.
        self.clients = [str(a) for a in reversed(hosts) if a not in dynamic and a not in taken][:CLIENTS]
        len(self.clients) == CLIENTS or fail(f"the subnet {self.subnet} has no room for {CLIENTS} test clients")
        self.namespaces = []
        self.addresses = {}  # service -> [address per replica]
        self.prefix = self.subnet.prefixlen
        run("ip", "link", "add", "br0", "type", "bridge")
        run("ip", "link", "set", "br0", "up")
        run("ip", "link", "set", "lo", "up")
        self._localnet(None, "br0")
        for address in [self.gateway, *self.clients]:
            run("ip", "addr", "add", f"{address}/{self.prefix}", "dev", "br0")
        note(f"network {self.subnet} (dynamic {dynamic}); the test at {self.gateway} (the gateway) and {len(self.clients)} client addresses")

    @staticmethod
    def _localnet(namespace, interface):
        # Loopback-range addresses on a real interface (the fallback subnet) need route_localnet.
        prefix = ["ip", "netns", "exec", namespace] if namespace else []
        for key in ("all", interface):
            run(*prefix, "sysctl", "-qw", f"net.ipv4.conf.{key}.route_localnet=1")

    def add(self, service, replica):
        namespace = f"{PREFIX}-{service}-{replica}"
        if service in self.static:
            replica == 1 or fail(f"service {service} has a fixed ipv4_address and {replica} replicas")
            address = str(self.static[service])
        else:
            self.free or fail(f"no address left in the ip_range of {self.subnet}")
            address = str(self.free.pop(0))
        index = len(self.namespaces) + 1
        run("ip", "netns", "add", namespace)
        self.namespaces.append(namespace)
        exec_in = ["ip", "netns", "exec", namespace]
        # The namespace keeps 127.0.0.1 (and 127.0.0.11 for the DNS) on lo, not all of 127/8,
        # so a loopback-range subnet on the bridge is routed, not local.
        run(*exec_in, "ip", "link", "set", "lo", "up")
        run(*exec_in, "ip", "addr", "del", "127.0.0.1/8", "dev", "lo")
        run(*exec_in, "ip", "addr", "add", "127.0.0.1/32", "dev", "lo")
        run(*exec_in, "ip", "addr", "add", "127.0.0.11/32", "dev", "lo")
        host_end, inner_end = f"h{index}", f"n{index}"
        run("ip", "link", "add", host_end, "type", "veth", "peer", "name", inner_end)
        run("ip", "link", "set", inner_end, "netns", namespace)
        run("ip", "link", "set", host_end, "master", "br0")
        run("ip", "link", "set", host_end, "up")
        run(*exec_in, "ip", "link", "set", inner_end, "name", "eth0")
        self._localnet(namespace, "eth0")
        run(*exec_in, "ip", "addr", "add", f"{address}/{self.prefix}", "dev", "eth0")
        run(*exec_in, "ip", "link", "set", "eth0", "up")
        self.addresses.setdefault(service, []).append(address)
        return namespace, address

    def write_hosts(self):
        lines = ["127.0.0.1 localhost"]
        for service, addresses in sorted(self.addresses.items()):
            for n, address in enumerate(addresses, 1):
                lines.append(f"{address} {service} {PREFIX}-{service}-{n}")
        for namespace in self.namespaces:
            directory = f"/etc/netns/{namespace}"
            os.makedirs(directory, exist_ok=True)
            with open(f"{directory}/hosts", "w") as hosts:
                hosts.write("\n".join(lines) + "\n")
            with open(f"{directory}/resolv.conf", "w") as resolv:
                resolv.write("nameserver 127.0.0.11\n")

    def teardown(self):
        for namespace in self.namespaces:
            run("ip", "netns", "del", namespace, check=False)
            shutil.rmtree(f"/etc/netns/{namespace}", ignore_errors=True)


DNS_SERVER = r"""
import socket, struct, sys, json
names = json.loads(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.11", 53))
while True:
    data, peer = s.recvfrom(512)
    try:
        ident, flags, qd = struct.unpack("!HHH", data[:6])
        i, labels = 12, []
        while data[i]:
            labels.append(data[i + 1:i + 1 + data[i]].decode()); i += 1 + data[i]
        qtype, qclass = struct.unpack("!HH", data[i + 1:i + 5])
        question = data[12:i + 5]
        name = ".".join(labels).lower().rstrip(".")
        addresses = names.get(name, []) if qtype == 1 else []
        rcode = 0 if name in names else 3
        answers = b"".join(b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 1, 4) + socket.inet_aton(a) for a in addresses)
        header = struct.pack("!HHHHHH", ident, 0x8180 | rcode, 1, len(addresses), 0, 0)
        s.sendto(header + question + answers, peer)
    except Exception:
        pass
"""


# ----------------------------------------------------------------------------------------------
# Services.


class Instance:
    def __init__(self, stack, service, replica, spec, namespace, address):
        self.stack, self.service, self.replica, self.spec = stack, service, replica, spec
        self.namespace, self.address = namespace, address
        self.name = f"{service}-{replica}"
        self.process = None
        self.container = None
        self.log = open(os.path.join(WORK, f"{self.name}.log"), "ab")

    @property
    def exec_in(self):
        return ["ip", "netns", "exec", self.namespace]

    def kind(self):
        image = self.spec.get("image", "")
        if image.startswith("redis:"):
            return "redis"
        if image.startswith("haproxy:"):
            return "haproxy"
        if "build" in self.stack.config["services"].get(self.service, {}) or image == self.stack.project_image:
            return "project"
        fail(f"service {self.service}: no way to run image {image} here")

    def environment(self):
        env = self.spec.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        return {k: "" if v is None else str(v) for k, v in env.items()}

    def command_line(self):
        kind = self.kind()
        command = self.spec.get("command")
        if isinstance(command, str):
            command = command.split()
        if kind == "project":
            entrypoint = self.spec.get("entrypoint") or self.stack.image_entrypoint
            return list(entrypoint) + list(command if command is not None else self.stack.image_cmd)
        if kind == "redis":
            # The official image's entrypoint adds --protected-mode no when started without a
            # config file, so that other containers may connect.
            command = list(command or ["redis-server"])
            return command + ["--protected-mode", "no"]
        # haproxy: the official image runs `haproxy -f /usr/local/etc/haproxy/haproxy.cfg`.
        config = self.mounted("/usr/local/etc/haproxy/haproxy.cfg")
        if config is None:
            fail(f"service {self.service}: haproxy.cfg is not mounted")
        return ["haproxy", "-W", "-db", "-f", config]

    def mounted(self, target):
        for volume in self.spec.get("volumes") or []:
            if isinstance(volume, str):
                parts = volume.split(":")
                source, path = parts[0], parts[1]
            else:
                source, path = volume.get("source"), volume.get("target")
            if path == target:
                return source
        return None

    def host_binary(self, argv):
        return [HOST_BINARY if a == self.stack.image_entrypoint[0] else a for a in argv]

    def start(self):
        argv = self.command_line()
        if self.kind() == "project" and HOST_BINARY:
            env = [f"{k}={v}" for k, v in self.environment().items()]
            argv = [*self.exec_in, "env", "VONAGE_SESSIONS_ENV=production", *env, *self.host_binary(argv)]
        elif self.kind() == "project":
            if self.container is None:
                self.container = run(*BUILDAH, "from", "--pull-never", IMAGE).stdout.strip()
                self.stack.containers.append(self.container)
            env = []
            for key, value in self.environment().items():
                env += ["-e", f"{key}={value}"]
            for capability in self.spec.get("cap_drop") or []:
                env += ["--cap-drop", capability]
            # Service names resolve through /etc/netns/NS/hosts, which `ip netns exec` mounts over
            # /etc/hosts (Debian's buildah 1.28 has no `run --add-host`).
            hosts = []
            argv = [
                *self.exec_in, *BUILDAH, "run", "--isolation", "chroot", "--network", "host",
                "--user", self.stack.image_user, *hosts, *env, self.container, "--", *argv,
            ]
        else:
            argv = [*self.exec_in, *argv]
        self.log.write(f"--- start: {' '.join(argv[:12])} ...\n".encode())
        self.log.flush()
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO)

    def healthcheck(self):
        """Runs the service's healthcheck (CMD form) the way the engine would; True if it passes."""
        check = self.spec.get("healthcheck")
        if not check or check.get("disable"):
            return True
        test = check["test"]
        if test[0] == "CMD-SHELL":
            argv = ["sh", "-c", test[1]]
        else:
            argv = list(test[1:])
        timeout = seconds(check.get("timeout"), 30)
        if self.kind() == "project" and HOST_BINARY:
            argv = [*self.exec_in, *self.host_binary(argv)]
        elif self.kind() == "project":
            argv = [*self.exec_in, *BUILDAH, "run", "--isolation", "chroot", "--network", "host",
                    "--user", self.stack.image_user, self.container, "--", *argv]
        elif argv[0] == "wget" and shutil.which("wget") is None:
            # Alpine's busybox wget in the image; curl does the same request here.
            url = argv[-1]
            argv = [*self.exec_in, "curl", "-fsS", "-o", "/dev/null", "--max-time", str(int(timeout)), url]
        else:
            argv = [*self.exec_in, *argv]
        try:
            return subprocess.run(argv, capture_output=True, timeout=timeout + 5).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def wait_healthy(self):
        check = self.spec.get("healthcheck") or {}
        interval = min(seconds(check.get("interval"), 5), 1.0)  # polled faster than the engine
        deadline = time.time() + seconds(check.get("start_period"), 0) + 60
        while time.time() < deadline:
            if self.process.poll() is not None:
                fail(f"{self.name} exited with {self.process.returncode} before it was healthy (log: {self.log.name})")
            if self.healthcheck():
                return
            time.sleep(interval)
        fail(f"{self.name} did not become healthy in time (log: {self.log.name})")

    def main_pid(self):
        """The service process itself. For the project's image it runs under buildah (a Go
        program, whose children are forked from any of its threads, so /proc/PID/task/PID/children
        misses some): every process's parent is read from /proc instead, and the deepest
        descendant running the command's binary is the service. Never buildah itself: a SIGTERM
        to `buildah run` kills the container at once, with no drain."""
        if self.kind() != "project":
            return self.process.pid  # ip netns exec execs the service itself
        argv0 = os.path.basename(self.host_binary(self.command_line())[0] if HOST_BINARY else self.command_line()[0])
        children = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/status") as status:
                    ppid = next(int(line.split()[1]) for line in status if line.startswith("PPid:"))
            except (OSError, StopIteration, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
        found, todo = None, [(self.process.pid, 0)]
        while todo:
            pid, depth = todo.pop()
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    command = f.read().split(b"\0")[0].decode(errors="replace")
            except OSError:
                command = ""
            if pid != self.process.pid and os.path.basename(command) == argv0 and (found is None or depth > found[1]):
                found = (pid, depth)
            todo += [(child, depth + 1) for child in children.get(pid, [])]
        found or fail(f"{self.name}: no process running {argv0} under pid {self.process.pid}")
        return found[0]

    def stop(self, sig=signal.SIGTERM, timeout=40):
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        os.kill(self.main_pid(), sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


class Stack:
    def __init__(self, config):
        self.config = config
        self.project_image = next(
            (s.get("image") for s in config["services"].values() if "build" in s), None
        )
        self.network = Network(config)
        self.instances = {}
        self.containers = []
        self.dns = None
        if HOST_BINARY:
            inspect = [{"Config": {"Entrypoint": ["/usr/local/bin/vonage-sessions"], "Cmd": ["serve"]}}][0]
        else:
            inspect = json.loads(run("podman", "--storage-driver", "vfs", "image", "inspect", IMAGE).stdout)[0]
        self.image_entrypoint = inspect["Config"].get("Entrypoint") or []
        self.image_cmd = inspect["Config"].get("Cmd") or []
        self.image_user = inspect["Config"].get("User") or "65532"

    def plan(self):
        for service in start_order(self.config["services"]):
            spec = self.config["services"][service]
            replicas = int(((spec.get("deploy") or {}).get("replicas")) or 1)
            self.instances[service] = []
            for replica in range(1, replicas + 1):
                namespace, address = self.network.add(service, replica)
                self.instances[service].append(Instance(self, service, replica, spec, namespace, address))
        self.network.write_hosts()
        for service, instances in self.instances.items():
            for instance in instances:
                note(f"{instance.name:12} {instance.kind():8} {instance.address:12} netns {instance.namespace}")

    def start_dns(self, instance):
        names = {service: addresses for service, addresses in self.network.addresses.items()}
        self.dns = subprocess.Popen(
            [*instance.exec_in, sys.executable, "-c", DNS_SERVER, json.dumps(names)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(0.3)

    def up(self):
        for service in start_order(self.config["services"]):
            for dependency, condition in (self.config["services"][service].get("depends_on") or {}).items():
                if (condition or {}).get("condition") == "service_healthy":
                    for instance in self.instances[dependency]:
                        instance.wait_healthy()
            for instance in self.instances[service]:
                if instance.kind() == "haproxy":
                    self.start_dns(instance)
                instance.start()
                note(f"started {instance.name}: {' '.join(instance.command_line())}")
        for instances in self.instances.values():
            for instance in instances:
                instance.wait_healthy()
        ok("every service instance passes its compose healthcheck")

    def down(self):
        for instances in reversed(list(self.instances.values())):
            for instance in instances:
                try:
                    instance.stop(signal.SIGTERM, timeout=10)
                except Exception:
                    pass
        if self.dns:
            self.dns.kill()
        for container in self.containers:
            run(*BUILDAH, "rm", container, check=False)
        self.network.teardown()


# ----------------------------------------------------------------------------------------------
# HTTP.


def http(method, url, body=None, timeout=10, source=None, headers=None):
    """One request on its own connection, from `source` (an address of the hub) when given."""
    target = urllib.parse.urlsplit(url)
    data = None if body is None else json.dumps(body).encode()
    sent = {"content-type": "application/json", "connection": "close", **(headers or {})}
    connection = httpclient.HTTPConnection(
        target.hostname, target.port, timeout=timeout, source_address=(source, 0) if source else None)
    try:
        connection.request(method, target.path or "/", body=data, headers=sent)
        response = connection.getresponse()
        return response.status, response.read()
    except (httpclient.HTTPException, OSError) as error:
        return 0, str(error).encode()
    finally:
        connection.close()


def json_of(raw):
    try:
        return json.loads(raw)
    except ValueError:
        return {}


def eventually(what, check, within=30):
    deadline = time.time() + within
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.2)
    fail(f"timed out after {within} s waiting for {what}")


def main():
    directory = os.path.join(WORK, "compose")
    os.makedirs(os.path.join(directory, "deploy"), exist_ok=True)
    shutil.copy(os.path.join(REPO, "docker-compose.yml"), directory)
    shutil.copytree(os.path.join(REPO, "deploy/compose"), os.path.join(directory, "deploy/compose"), dirs_exist_ok=True)
    shutil.copy(os.path.join(REPO, ".env.example"), os.path.join(directory, ".env"))

    step("the topology, from docker-compose config")
    config = compose_config(directory)
    stack = Stack(config)
    try:
        stack.plan()
        proxy = stack.instances["proxy"][0]
        apps = stack.instances["app"]
        redis = stack.instances["redis"][0]
        emulator = stack.instances["emulator"][0]
        published = [p for p in proxy.spec.get("ports") or []]
        target = int(published[0]["target"] if isinstance(published[0], dict) else str(published[0]).split(":")[-1])
        base = f"http://{proxy.address}:{target}"
        note(f"the proxy's published port {target} is reached at {base} (the host port mapping itself is the engine's)")

        step("what of the compose file is not reproduced here, and why")
        for key, why in NOT_REPRODUCED.items():
            users = sorted(name for name, spec in config["services"].items() if spec.get(key))
            if users:
                note(f"{key} ({', '.join(users)}): {why}")

        step("up: every service in depends_on order, each waiting for its dependencies' healthchecks")
        stack.up()

        clients = stack.network.clients

        def in_rotation():
            """Which replicas the proxy sends requests to: /livez through it, counted by each
            replica's own http_requests_total (the proxy's checks use /readyz, not /livez)."""
            def served():
                counts = []
                for app in apps:
                    text = http("GET", f"http://{app.address}:8080/metrics")[1].decode(errors="replace")
                    counts.append(sum(float(line.split()[-1]) for line in text.splitlines()
                                      if line.startswith("http_requests_total{") and 'route="/livez"' in line))
                return counts
            before = served()
            for _ in range(2 * len(apps)):
                http("GET", f"{base}/livez")
            return [app for app, was, now in zip(apps, before, served()) if now > was]

        def wait_in_rotation(within=30):
            eventually("the proxy to send requests to every replica", lambda: len(in_rotation()) == len(apps), within)

        step("through HAProxy")
        eventually("GET /readyz through the proxy to answer 200", lambda: http("GET", f"{base}/readyz")[0] == 200)
        ok("GET /readyz answers 200 through the proxy once both replicas are healthy")
        for app in apps:
            status, _ = http("GET", f"http://{app.address}:8080/readyz")
            status == 200 or fail(f"{app.name} /readyz answered {status}")
        ok(f"both replicas answer /readyz 200 on their own port 8080 ({', '.join(a.address for a in apps)})")
        wait_in_rotation()
        ok("the proxy sends requests to both replicas (each one's http_requests_total for /livez grows)")

        step("100 concurrent joins of one room through the proxy, from 4 callers")
        with ThreadPoolExecutor(max_workers=100) as pool:
            results = list(pool.map(
                lambda n: http("POST", f"{base}/rooms/compose-standup/join", {}, source=clients[n % 4]), range(100)))
        statuses = [status for status, _ in results]
        bad = [s for s in statuses if s not in (200, 201)]
        bad and fail(f"joins answered {sorted(set(bad))}: {results[statuses.index(bad[0])][1][:300]!r}")
        created = statuses.count(201)
        ids = {json_of(body).get("sessionId") for status, body in results if status in (200, 201)}
        created == 1 or fail(f"{created} joins created the room, not 1")
        len(ids) == 1 or fail(f"the joins got {len(ids)} sessions")
        sessions = json_of(http("GET", f"http://{emulator.address}:9090/_emulator/sessions")[1])
        len(sessions) == 1 or fail(f"the emulator holds {len(sessions)} sessions, not 1")
        ok("100 concurrent joins: 1 created, 99 joined, one session at the emulator; none refused 429 (25 per")
        note("caller fit each caller's join burst of 60; counted as one caller, the proxy, 40 would have been refused)")

        step("rate limits per caller behind the proxy (option forwardfor, auth.trusted_proxies)")
        create = f"{base}/sessions"
        caller_a, caller_b = clients[4], clients[5]

        def burst(n, url=create, source=caller_a, forwarded=None):
            """n creates at once; forwarded(i) gives request i its own X-Forwarded-For."""
            def one(i):
                headers = {"x-forwarded-for": forwarded(i)} if forwarded else None
                return http("POST", url, {}, source=source, headers=headers)[0]
            with ThreadPoolExecutor(max_workers=n) as pool:
                return list(pool.map(one, range(n)))

        # The create budget: burst 10, then 1 a second (rate_limits.create_*; GCRA in Redis).
        # Requests are sent at once, so few can pass by refill; every bound below allows for
        # the refill over the time the step really took, so a slow machine cannot fail it.
        exhausted = time.time()
        spent = burst(20)
        set(spent) <= {201, 429} or fail(f"creates answered {spent}")
        refill = lambda: int(time.time() - exhausted) + 1
        spent.count(201) <= 10 + refill() or fail(f"one caller got {spent.count(201)} of 20 creates at once, more than its burst")
        spoofed = burst(10, forwarded=lambda i: f"198.51.100.{i + 1}")
        spoofed.count(201) <= refill() or fail(
            f"the caller escaped its budget with its own X-Forwarded-For: {spoofed.count(201)} of 10 passed")
        direct = burst(10, url=f"http://{apps[0].address}:8080/sessions", forwarded=lambda i: f"198.51.100.{i + 101}")
        direct.count(201) <= refill() or fail(
            f"X-Forwarded-For was believed from a peer that is not the proxy: {direct.count(201)} of 10 passed")
        took = time.time() - exhausted
        other = burst(5, source=caller_b)
        other == [201] * 5 or fail(f"another caller behind the same proxy was limited: {other}")
        ok(f"one caller: {spent.count(201)} of 20 creates at once, the rest 429; another caller behind the same proxy: 5 of 5")
        ok(f"10 more with their own X-Forwarded-For each, through the proxy: {spoofed.count(201)} passed, within {took:.1f} s of the burst")
        ok(f"10 sent to a replica directly (not from the proxy), X-Forwarded-For each: {direct.count(201)} passed, not believed")

        step("SIGTERM to one replica under a load of joins")
        stop = threading.Event()
        errors, answered, limited = [], [0], [0]
        # Each load thread is its own caller (its own join budget, 10/s), paced at 4/s.
        pace = 0.25

        def load(source):
            while not stop.is_set():
                started = time.time()
                status, body = http("POST", f"{base}/rooms/compose-standup/join", {}, source=source)
                if status in (200, 201):
                    answered[0] += 1
                elif status == 429:
                    limited[0] += 1
                else:
                    errors.append((status, body[:200]))
                time.sleep(max(0.0, pace - (time.time() - started)))

        wait_in_rotation()
        threads = [threading.Thread(target=load, args=(clients[6 + n % (CLIENTS - 6)],)) for n in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        victim = apps[0]
        terminated = time.time()
        code = victim.stop(signal.SIGTERM, timeout=40)
        drained = time.time() - terminated
        time.sleep(1)
        stop.set()
        for thread in threads:
            thread.join()
        with open(victim.log.name, errors="replace") as log:
            "shutting down: draining" in log.read() or fail(f"{victim.name} did not log its drain: the SIGTERM missed the service")
        if errors:
            fail(f"{len(errors)} of {answered[0] + len(errors)} joins failed while {victim.name} drained: {errors[:3]}")
        code == 0 or fail(f"{victim.name} exited {code} after SIGTERM, not 0")
        answered[0] >= 60 or fail(f"the load did not really run: {answered[0]} joins")
        limited[0] == 0 or fail(f"{limited[0]} joins of the load were refused 429 (each thread is paced under its budget)")
        ok(f"{answered[0]} joins during the drain, none answered with an error; {victim.name} exited {code} {drained:.1f} s after SIGTERM")
        victim.start()
        victim.wait_healthy()
        wait_in_rotation()
        ok(f"{victim.name} started again, is healthy and back in the proxy's rotation")

        step("Redis stopped, then started again")
        redis.stop(signal.SIGTERM, timeout=10)
        for app in apps:
            eventually(f"{app.name} /readyz to answer 503", lambda: http("GET", f"http://{app.address}:8080/readyz")[0] == 503, 15)
        ok("both replicas' /readyz answer 503 while Redis is down")
        for app in apps:
            status, body = http("POST", f"http://{app.address}:8080/rooms/while-redis-is-down/join", {})
            (status == 503 and json_of(body).get("code") == "store_unavailable") or fail(
                f"{app.name}: a join answered {status} {body[:200]!r}, not 503 store_unavailable")
        status, body = http("POST", f"{base}/rooms/while-redis-is-down/join", {})
        status == 503 or fail(f"through the proxy a join answered {status}, not 503")
        for app in apps:
            metrics = http("GET", f"http://{app.address}:8080/metrics")[1].decode(errors="replace")
            counted = [l for l in metrics.splitlines() if l.startswith("rate_limit_store_fallback_total")]
            (counted and float(counted[0].split()[-1]) == 1) or fail(f"{app.name}: rate_limit_store_fallback_total is {counted}, not 1")
            with open(app.log.name, errors="replace") as log:
                said = sum("fall back to this replica's local budget" in line for line in log)
            said == 1 or fail(f"{app.name} logged the rate-limit fallback {said} times, not once")
        ok("each replica's rate limits fell back to its local budget: said once in its log, rate_limit_store_fallback_total 1")
        ok(f"joins answer 503 store_unavailable on both replicas; through the proxy 503 ({'problem+json' if json_of(body).get('code') else 'HAProxy: no replica is ready'})")
        redis.start()
        redis.wait_healthy()
        for app in apps:
            eventually(f"{app.name} /readyz to answer 200 again", lambda: http("GET", f"http://{app.address}:8080/readyz")[0] == 200, 30)
        eventually("GET /readyz through the proxy to answer 200 again", lambda: http("GET", f"{base}/readyz")[0] == 200)
        wait_in_rotation()
        status, body = http("POST", f"{base}/rooms/after-redis/join", {})
        status == 201 or fail(f"a join after Redis came back answered {status} {body[:200]!r}")
        ok("Redis back: both replicas ready again and in the proxy's rotation, joins succeed, no restart")
    except Failure:
        # What the proxy thought of the replicas: its server state changes, with reasons.
        with open(os.path.join(WORK, "proxy-1.log"), errors="replace") as log:
            changes = [line.rstrip() for line in log
                       if line.startswith("[") and ("Server " in line or "changed its IP" in line)]
        print("--- the proxy's server state changes", *changes, sep="\n    ", file=sys.stderr)
        raise
    finally:
        step("down")
        stack.down()
    print("\ncompose-test: the compose stack ran and every check passed", flush=True)


if __name__ == "__main__":
    try:
        main()
    except Failure as failure:
        print(f"\nFAIL: {failure}", file=sys.stderr, flush=True)
        sys.exit(1)
