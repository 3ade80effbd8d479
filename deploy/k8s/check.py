#!/usr/bin/env python3
"""Checks the Kubernetes manifests of deploy/k8s offline, as CI runs them.

For every overlay under overlays/:
  1. `kubectl kustomize` renders it;
  2. `kubernetes-validate --strict` accepts every Kubernetes object for the
     oldest supported version (1.29) and the newest its schemas know;
  3. every Istio object validates against Istio's published CRD schema
     (istio-schemas/validate.mjs, when --istio-validator is given);
  4. the rules below hold for every pod template: each container has
     startup, readiness and liveness probes, CPU and memory requests and
     limits, and a security context that runs it as non-root on a
     read-only root filesystem with every capability dropped and no
     privilege escalation (init containers: all but the probes); the
     service containers probe /actuator/ready and /actuator/health and
     drain within their grace period; and no Secret holds anything but a
     placeholder.

`--self-test` breaks a rendered overlay in each of those ways in turn and
fails unless the rules catch every one: the check itself can fail.

Prints one line per check and closes with "manifests: N passed, M failed";
exits 1 if any failed. Needs PyYAML (kubernetes-validate brings it).
"""

import argparse
import base64
import copy
import json
import pathlib
import subprocess
import sys
import tempfile

import yaml

HERE = pathlib.Path(__file__).resolve().parent
OLDEST = "1.29.0"
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
# What a service's SIGTERM drain takes after its preStop pause: in-flight
# requests (platform::server::Limits::drain) and background work
# (wiring::stop), 10 s each.
DRAIN_AFTER_SIGTERM_SECS = 20
PLACEHOLDER_MARKS = ("REPLACE_ME", "PLACEHOLDER")


def pod_spec(doc):
    """The pod template's spec of a workload, or None."""
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind in WORKLOADS:
        return (spec.get("template") or {}).get("spec")
    if kind == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        return (job.get("template") or {}).get("spec")
    if kind == "Pod":
        return spec
    return None


def container_problems(pod, container, init):
    """What a container lacks, as sentences."""
    problems = []
    if not init:
        for probe in PROBES:
            if not container.get(probe):
                problems.append(f"no {probe}")
    resources = container.get("resources") or {}
    for part in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if not (resources.get(part) or {}).get(resource):
                problems.append(f"no {resource} {part[:-1]}")
    pod_context = pod.get("securityContext") or {}
    context = container.get("securityContext") or {}

    def effective(key):
        return context.get(key, pod_context.get(key))

    if effective("runAsNonRoot") is not True:
        problems.append("runAsNonRoot is not true")
    if effective("runAsUser") == 0:
        problems.append("runs as uid 0")
    if context.get("readOnlyRootFilesystem") is not True:
        problems.append("root filesystem is not read-only")
    if context.get("allowPrivilegeEscalation") is not False:
        problems.append("privilege escalation is not disallowed")
    if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
        problems.append("capabilities are not all dropped")
    return problems


def http_path(probe):
    return ((probe or {}).get("httpGet") or {}).get("path")


def service_problems(pod, container):
    """The rules for the hanwha-delivery binary's own containers."""
    problems = []
    if http_path(container.get("readinessProbe")) != "/actuator/ready":
        problems.append("readiness does not probe /actuator/ready")
    for probe in ("livenessProbe", "startupProbe"):
        if http_path(container.get(probe)) != "/actuator/health":
            problems.append(f"{probe} does not probe /actuator/health")
    pre_stop = ((container.get("lifecycle") or {}).get("preStop") or {})
    pause = (pre_stop.get("sleep") or {}).get("seconds")
    if not pause:
        problems.append("no preStop pause")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace < (pause or 0) + DRAIN_AFTER_SIGTERM_SECS:
        problems.append(
            f"terminationGracePeriodSeconds {grace} < preStop {pause} s + "
            f"drain {DRAIN_AFTER_SIGTERM_SECS} s"
        )
    return problems


def secret_problems(doc):
    problems = []
    values = dict(doc.get("stringData") or {})
    for key, value in (doc.get("data") or {}).items():
        values[key] = base64.b64decode(value).decode("utf-8", "replace")
    for key, value in values.items():
        if not any(mark in value for mark in PLACEHOLDER_MARKS):
            problems.append(f"key {key} holds a value, not a placeholder")
    return problems


def rule_problems(docs):
    """Every rule broken in a rendered overlay, as 'Kind/name: problem'."""
    problems = []
    for doc in docs:
        name = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        if doc.get("kind") == "Secret":
            problems += [f"{name}: {p}" for p in secret_problems(doc)]
        pod = pod_spec(doc)
        if pod is None:
            continue
        for init, key in ((False, "containers"), (True, "initContainers")):
            for container in pod.get(key) or []:
                where = f"{name} {key[:-1]} {container.get('name')}"
                found = container_problems(pod, container, init)
                if not init and str(container.get("image", "")).startswith("hanwha-delivery"):
                    found += service_problems(pod, container)
                problems += [f"{where}: {p}" for p in found]
    return problems


def is_istio(doc):
    return str(doc.get("apiVersion", "")).split("/")[0].endswith("istio.io")


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what, details=()):
        if ok:
            self.passed += 1
            print(f"ok   {what}")
        else:
            self.failed += 1
            print(f"FAIL {what}")
            for line in details:
                print(f"       {line}")


def render(kubectl, overlay):
    result = subprocess.run(
        [kubectl, "kustomize", str(overlay)], capture_output=True, text=True
    )
    if result.returncode != 0:
        return None, result.stderr.strip().splitlines()
    return [d for d in yaml.safe_load_all(result.stdout) if d], []


def kubernetes_validate(validator, docs, version):
    """Problems kubernetes-validate --strict reports for these objects."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump_all(docs, f)
        f.flush()
        result = subprocess.run(
            [validator, "--strict", "--quiet", "-k", version, f.name],
            capture_output=True,
            text=True,
        )
    # --quiet prints only what did not pass (an error, or a kind it has no
    # schema for, which is a WARN): any such line is a failure here.
    lines = [l for l in (result.stdout + result.stderr).splitlines() if l.strip()]
    if result.returncode != 0 and not lines:
        lines = [f"kubernetes-validate exited {result.returncode}"]
    return [l.replace(f.name, "<overlay>") for l in lines if not l.startswith(" ")][:20]


def istio_validate(node, validator, docs):
    payload = "".join(json.dumps(d) + "\n" for d in docs)
    result = subprocess.run(
        [node, str(validator)], input=payload, capture_output=True, text=True,
        cwd=validator.parent,
    )
    lines = result.stdout.splitlines()
    bad = [l for l in lines if not l.startswith("valid ")]
    if result.returncode != 0 and not bad:
        bad = result.stderr.strip().splitlines()[-5:] or ["validator failed"]
    return bad, len(lines) - len(bad)


def newest_version():
    from kubernetes_validate import utils

    return utils.latest_version()


def self_test(report, docs):
    """Breaks a clean overlay in each way the rules forbid; each must be caught."""

    def service(d):
        return pod_spec(d)["containers"][0]

    def with_init(missing):
        """An init container like the service's own, but without `missing`."""
        def mutate(pod):
            init = copy.deepcopy(pod["containers"][0])
            for probe in ("startupProbe", "readinessProbe", "livenessProbe", "lifecycle", "ports"):
                init.pop(probe, None)
            init["name"] = "prepare"
            dele(missing)(init)
            pod["initContainers"] = [init]
        return mutate

    def dele(path):
        def mutate(c):
            *parents, last = path.split(".")
            for p in parents:
                c = c[p]
            del c[last]
        return mutate

    def setter(path, value):
        def mutate(c):
            *parents, last = path.split(".")
            for p in parents:
                c = c.setdefault(p, {})
            c[last] = value
        return mutate

    def on_pod(mutation):
        return lambda d: mutation(pod_spec(d))

    breaks = [
        ("a service without a readiness probe", "order", service, dele("readinessProbe")),
        ("a service without a liveness probe", "order", service, dele("livenessProbe")),
        ("a service without a startup probe", "order", service, dele("startupProbe")),
        ("a database without a liveness probe", "postgres", service, dele("livenessProbe")),
        ("a service without limits", "payment", service, dele("resources.limits")),
        ("a service without a memory request", "payment", service, dele("resources.requests.memory")),
        ("a broker without limits", "nats", service, dele("resources.limits")),
        ("a container allowed to run as root", "store", service, setter("securityContext.runAsNonRoot", False)),
        ("runAsNonRoot set neither on the pod nor on the container", "store",
         on_pod(lambda pod: (dele("securityContext.runAsNonRoot")(pod),
                             dele("securityContext.runAsNonRoot")(pod["containers"][0]))), None),
        ("a container running as uid 0", "delivery", service, setter("securityContext.runAsUser", 0)),
        ("a writable root filesystem", "status", service, setter("securityContext.readOnlyRootFilesystem", False)),
        ("capabilities kept", "notification", service, setter("securityContext.capabilities.drop", [])),
        ("privilege escalation allowed", "gateway", service, setter("securityContext.allowPrivilegeEscalation", True)),
        ("an init container without a security context", "identity", on_pod(with_init("securityContext")), None),
        ("an init container without limits", "identity", on_pod(with_init("resources.limits")), None),
        ("readiness on the liveness path", "order", service, setter("readinessProbe.httpGet.path", "/actuator/health")),
        ("no preStop pause", "order", service, dele("lifecycle")),
        ("a grace period shorter than the drain", "order", on_pod(setter("terminationGracePeriodSeconds", 15)), None),
    ]
    clean = rule_problems(docs)
    report.check(not clean, "self-test: the unbroken overlay passes the rules", clean)
    for what, name, pick, mutation in breaks:
        broken = copy.deepcopy(docs)
        kind = "StatefulSet" if name in ("postgres", "nats", "mariadb") else "Deployment"
        target = next(d for d in broken if d["kind"] == kind and d["metadata"]["name"] == name)
        if mutation is None:
            pick(target)
        else:
            mutation(pick(target))
        found = rule_problems(broken)
        report.check(bool(found), f"self-test: {what} is caught", ["not caught"] if not found else [])
    secret = copy.deepcopy(next(d for d in docs if d["kind"] == "Secret"))
    secret["data"] = {"password": base64.b64encode(b"hunter2").decode()}
    report.check(bool(rule_problems([secret])), "self-test: a Secret with a real value is caught")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubectl", default="kubectl")
    parser.add_argument("--kubernetes-validate", default="kubernetes-validate")
    parser.add_argument("--node", default="node")
    parser.add_argument(
        "--istio-validator",
        help="istio-schemas/validate.mjs with its packages installed; without it Istio objects fail",
    )
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()

    report = Report()
    versions = [OLDEST, newest_version()]
    overlays = sorted(p for p in (HERE / "overlays").iterdir() if (p / "kustomization.yaml").exists())
    rendered = {}
    for overlay in overlays:
        docs, errors = render(args.kubectl, overlay)
        report.check(docs is not None, f"{overlay.name}: kubectl kustomize renders it", errors)
        if docs is None:
            continue
        rendered[overlay.name] = docs
        core = [d for d in docs if not is_istio(d)]
        istio = [d for d in docs if is_istio(d)]
        for version in versions:
            problems = kubernetes_validate(args.kubernetes_validate, core, version)
            report.check(
                not problems,
                f"{overlay.name}: kubernetes-validate --strict {version} accepts its {len(core)} Kubernetes objects",
                problems,
            )
        if istio:
            if args.istio_validator:
                validator = pathlib.Path(args.istio_validator).resolve()
                bad, good = istio_validate(args.node, validator, istio)
                kinds = sorted({d["kind"] for d in istio})
                report.check(
                    not bad,
                    f"{overlay.name}: {good} of {len(istio)} Istio objects ({', '.join(kinds)}) match Istio's CRD schemas",
                    bad,
                )
            else:
                report.check(False, f"{overlay.name}: Istio objects not validated (no --istio-validator)")
        problems = rule_problems(docs)
        report.check(
            not problems,
            f"{overlay.name}: probes, requests and limits, non-root read-only containers, drain, placeholder Secrets",
            problems,
        )
    if args.self_test:
        if "dev" in rendered:
            self_test(report, rendered["dev"])
        else:
            report.check(False, "self-test: the dev overlay did not render")
    print(f"manifests: {report.passed} passed, {report.failed} failed")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
