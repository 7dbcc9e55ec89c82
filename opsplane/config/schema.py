"""The inventory's JSON Schema (for editors) and its reference page (docs/configuration.md).

Both are generated from the pydantic models, so neither can drift from what the loader
accepts. Regenerate the page with:

    .venv/bin/python -m opsplane.config.schema --markdown > docs/configuration.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, TypeAdapter

from opsplane.alerts.models import AlertingSettings, AlertRule, IntakeSettings
from opsplane.config.models import (
    CHECK_MODELS,
    SECTIONS,
    Backoff,
    CheckBase,
    Component,
    Defaults,
    Endpoint,
    Environment,
    Inventory,
    JsonCondition,
    LogRotation,
    Name,
    Platform,
    RunSettings,
    RuntimeSettings,
    ServerSettings,
)
from opsplane.config.types import Duration, Ratio, Secret, Wait, format_duration

INHIBITION_FIELDS = ("inhibit_rules", "inhibit_dependents", "inhibit_dependents_hold",
                     "inhibit_dependents_more_severe")
SCHEMA_DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:opsplane:schema:opsplane.yaml:v1"
REGENERATE = ".venv/bin/python -m opsplane.config.schema --markdown > docs/configuration.md"

# Descriptions for fields whose model does not describe them (yet). A description written in
# the model always wins; these only fill gaps, keyed "Model.field" or, for a field that means
# the same thing wherever it appears, by the field name alone.
_FIELD_NOTES: dict[str, str] = {
    "Inventory.version": "Version of the file format.",
    "Inventory.platform": "The platform this file describes.",
    "Inventory.environments": "The environments, by name (lowercase).",
    "Inventory.defaults": "Defaults for every check.",
    "Inventory.server": "Where `opsplane serve` listens; how long dashboard sessions last and how "
                        "often an address may fail to sign in.",
    "Inventory.services": "Application services, by name.",
    "Inventory.databases": "PostgreSQL databases, by name.",
    "Inventory.caches": "Redis caches, by name.",
    "Inventory.proxies": "Reverse proxies and load balancers, by name.",
    "Inventory.hosts": "Machines whose resources are checked, by name.",
    "Platform.name": "Name shown in reports, pages and the status page.",
    "Platform.default_environment": "Environment used when a command is given no --env.",
    "Environment.description": "What the environment is for.",
    "Defaults.interval": "How often each check runs unless it says otherwise.",
    "Defaults.timeout": "Longest a single check run may take unless it says otherwise.",
    "ServerSettings.listen_host": "Address the control plane's API listens on.",
    "ServerSettings.listen_port": "Port the control plane's API listens on.",
    "Endpoint.host": "Host of the component in this environment.",
    "Endpoint.port": "Port of the component in this environment.",
    "description": "What the component does, for people reading reports.",
    "port": "Port the component listens on.",
    "criticality": "How much its failure hurts: critical, high or medium.",
    "depends_on": "Names of the components it needs; their failure explains its own.",
    "runbook": "Link to the runbook to follow when it fails.",
    "checks": "Health checks run against it; see the check types below.",
    "Service.kind": "What sort of service it is.",
    "Database.engine": "Database engine.",
    "Database.database": "Database name the postgres check connects to.",
    "Database.user": "User the postgres check connects as.",
    "Database.password": "Password of that user, as a secret reference.",
    "Cache.engine": "Cache engine.",
    "Cache.password": "Password (AUTH) of the cache, as a secret reference.",
    "Proxy.engine": "Proxy software.",
    "type": "Which kind of check this is.",
    "HttpCheck.scheme": "Scheme of the built URL.",
    "HttpCheck.path": "Path of the built URL.",
    "HttpCheck.method": "HTTP method of the request.",
    "HttpCheck.latency_warning": "Warning when the response takes longer than this.",
    "HttpCheck.latency_critical": "Critical when the response takes longer than this.",
    "HttpCheck.body_contains": "Text the response body must contain.",
    "HttpCheck.json": "A condition on a field of the JSON response body.",
    "HttpCheck.headers": "Extra request headers (no secrets here: use bearer_token).",
    "HttpCheck.bearer_token": "Sent as `Authorization: Bearer ...`, as a secret reference.",
    "HttpCheck.verify_tls": "Verify the server's certificate for https.",
    "HttpCheck.ca_file": "CA bundle used to verify the server's certificate.",
    "JsonCondition.op": "Comparison between the field and value.",
    "JsonCondition.value": "Value compared with the field (a list for `in`).",
    "PostgresCheck.connections_warning": "Warning when this share of max_connections is in use.",
    "PostgresCheck.connections_critical": "Critical when this share of max_connections is in use.",
    "PostgresCheck.long_transaction_warning": "Warning when a transaction is open this long.",
    "PostgresCheck.long_transaction_critical": "Critical when a transaction is open this long.",
    "PostgresCheck.replication_lag_warning": "Warning when a replica lags this far behind.",
    "PostgresCheck.replication_lag_critical": "Critical when a replica lags this far behind.",
    "RedisCheck.memory_warning": "Warning when used memory exceeds this share of maxmemory.",
    "RedisCheck.memory_critical": "Critical when used memory exceeds this share of maxmemory.",
    "TlsCheck.server_name": "Name sent in SNI to select the certificate; default: the host.",
    "TlsCheck.warning_days": "Warning when the certificate expires within this many days, "
                             "counted exactly: 30 warns from 720 hours before expiry.",
    "TlsCheck.critical_days": "Critical when the certificate expires within this many days, "
                              "counted exactly: 7 is critical from 168 hours before expiry.",
    "CommandCheck.warning_exit_codes": "Exit codes meaning warning; 0 is OK, any other critical.",
    "CommandCheck.env": "Extra environment variables for the command.",
    "CommandCheck.cwd": "Working directory of the command.",
    "HostCheck.disk_warning": "Warning when the filesystem is this full.",
    "HostCheck.disk_critical": "Critical when the filesystem is this full.",
    "HostCheck.memory_warning": "Warning when this share of memory is in use.",
    "HostCheck.memory_critical": "Critical when this share of memory is in use.",
    "HostCheck.cpu_warning": "Warning when CPU usage exceeds this.",
    "HostCheck.cpu_critical": "Critical when CPU usage exceeds this.",
}


def _bare(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema without the keys that vary from field to field."""
    return {k: v for k, v in schema.items() if k not in ("title", "default", "description")}


def _value_types() -> dict[str, tuple[dict[str, Any], str]]:
    """The inventory's own value types, by the name the reference page gives them."""
    return {
        name: (_bare(TypeAdapter(annotation).json_schema()), described)
        for name, annotation, described in (
            ("duration", Duration, "duration"),
            ("wait", Wait, "duration"),
            ("percentage", Ratio, "percentage"),
            ("secret", Secret, "secret reference"),
            ("name", Name, "name"),
        )
    }


_VALUE_TYPES = _value_types()
_TYPE_DESCRIPTIONS = {
    TypeAdapter(annotation).json_schema().get("description")
    for annotation in (Duration, Wait, Ratio, Secret)
}


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of `opsplane.yaml`, for editors and other tools."""
    schema = Inventory.model_json_schema()
    definitions = schema.setdefault("$defs", {})
    for model_name, model_schema in [("Inventory", schema), *definitions.items()]:
        for field, prop in model_schema.get("properties", {}).items():
            note = _FIELD_NOTES.get(f"{model_name}.{field}") or _FIELD_NOTES.get(field)
            if note and prop.get("description") in (None, *_TYPE_DESCRIPTIONS):
                prop["description"] = note
            # names of components and environments: the loader refuses others, so do editors
            if "patternProperties" in prop:
                prop.setdefault("additionalProperties", False)
    schema.update({"$schema": SCHEMA_DRAFT, "$id": SCHEMA_ID, "title": "opsplane.yaml"})
    ordered = {key: schema.pop(key) for key in ("$schema", "$id", "title")}
    ordered.update(schema)
    return ordered


# --- the reference page ------------------------------------------------------------------


class _Page:
    """Renders fields of the schema as Markdown tables."""

    def __init__(self, schema: dict[str, Any]):
        self.schema = schema
        self.definitions: dict[str, Any] = schema["$defs"]
        self.lines: list[str] = []

    def definition(self, model: type[BaseModel]) -> dict[str, Any]:
        name = model.__name__
        return self.schema if name == "Inventory" else self.definitions[name]

    def table(
        self,
        model: type[BaseModel],
        *,
        only: tuple[str, ...] | None = None,
        skip: tuple[str, ...] = (),
    ) -> None:
        """One row per field of `model` (those in `only`, when given, less those in `skip`)."""
        definition = self.definition(model)
        required = set(definition.get("required", ()))
        rows = ["| Field | Type | Default | Description |", "| --- | --- | --- | --- |"]
        for field, prop in definition["properties"].items():
            if field in skip or (only is not None and field not in only):
                continue
            attribute = _attribute(model, field)
            kind = self.type_of(prop)
            default = "required" if field in required else _default(model, attribute, kind)
            description = (prop.get("description") or "").replace("|", "\\|")
            rows.append(f"| `{field}` | {kind} | {default} | {description} |")
        self.lines += rows + [""]

    def type_of(self, prop: dict[str, Any]) -> str:
        bare = _bare(prop)
        for known, described in _VALUE_TYPES.values():
            if bare == known:
                return described
        if "$ref" in prop:
            name = prop["$ref"].rsplit("/", 1)[-1]
            target = self.definitions[name]
            return self.type_of(target) if "enum" in target else _words(name)
        if "anyOf" in prop:
            options = list(dict.fromkeys(
                self.type_of(p) for p in prop["anyOf"] if p.get("type") != "null"
            ))
            if "integer" in options and "number" in options:
                options.remove("integer")
            return " or ".join(options) if len(options) < 3 else (
                ", ".join(options[:-1]) + " or " + options[-1]
            )
        if "const" in prop:
            return f"`{prop['const']}`"
        if "enum" in prop:
            return "one of " + ", ".join(f"`{v}`" for v in prop["enum"])
        kind = prop.get("type")
        if kind == "array":
            items = prop.get("items", {})
            if "oneOf" in items:
                return "list of checks"
            if len(items.get("anyOf", ())) > 2:
                return "list of values"
            return f"list of {self.type_of(items)}"
        if kind == "object":
            if "patternProperties" in prop:
                (value,) = prop["patternProperties"].values()
                return f"mapping of name to {self.type_of(value)}"
            value = prop.get("additionalProperties", {})
            keys = "name" if "$ref" in value else "text"
            return f"mapping of {keys} to {self.type_of(value)}"
        if kind == "integer":
            low, high = prop.get("minimum"), prop.get("maximum")
            if low is not None and high is not None:
                return f"integer {low}-{high}"
            return f"integer >= {low}" if low is not None else "integer"
        return {"string": "text", "number": "number", "boolean": "`true`/`false`"}.get(
            str(kind), "any value"
        )


def _words(name: str) -> str:
    """'ServerSettings' -> 'server settings': a definition's name as the page says it."""
    return "".join(f" {c.lower()}" if c.isupper() else c for c in name).strip()


def _attribute(model: type[BaseModel], field: str) -> str:
    """The model attribute behind a schema property (they differ where an alias is used)."""
    for attribute, info in model.model_fields.items():
        if (info.alias or attribute) == field:
            return attribute
    return field


def _default(model: type[BaseModel], attribute: str, kind: str) -> str:
    info = model.model_fields[attribute]
    value = info.default_factory() if info.default_factory else info.default  # type: ignore[call-arg]
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, dict):
        return ", ".join(f"`{key}`" for key in value) if value else "`{}`"
    if isinstance(value, list):
        return "`[]`" if not value else f"`{json.dumps(value)}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if kind == "duration":
        return f"`{format_duration(value)}`"
    if kind == "percentage":
        return f"`{value * 100:g}%`"
    return f"`{value}`"


def _section_model(section: str) -> type[Component]:
    annotation = Inventory.model_fields[section].annotation
    return get_args(annotation)[1]  # type: ignore[no-any-return]


_CHECK_INTROS = {
    "http": "Sends an HTTP(S) request and judges the status code, the body and the latency.",
    "tcp": "Opens a TCP connection to the port: the port check of the service inventory.",
    "postgres": "Connects to PostgreSQL (what `pg_isready` tells, and more): connections in use, "
                "long transactions, replication lag. Uses the database's `database`, `user` and "
                "`password`.",
    "redis": "Sends PING and reads INFO: memory against maxmemory, keyspace hit ratio. "
             "Uses the cache's `password`.",
    "tls": "Reads the server's certificate and warns before it expires.",
    "command": "Runs a program (never through a shell) and judges its exit code.",
    "host": "Disk, memory, CPU and load of the machine opsplane runs on.",
    "pgbouncer": "Reads PgBouncer's SHOW POOLS and SHOW STATS on its admin console: clients waiting for "
                 "a server, the pool's use against its size, the average wait (docs/maintenance.md).",
}


def render_markdown() -> str:
    """docs/configuration.md: the introduction followed by a table of every section and field."""
    page = _Page(json_schema())
    add = page.lines.append
    introduction = (Path(__file__).parent / "reference-intro.md").read_text()
    page.lines += [introduction.strip("\n"), "", "## Reference", ""]
    add("Generated from the models in `opsplane/config/models.py`; the JSON Schema printed by")
    add("`opsplane config schema` says the same for editors.")
    add("")
    add("### Top level")
    add("")
    page.table(Inventory)
    settings: list[tuple[str, type[BaseModel]]] = [
        ("platform", Platform),
        ("environments.*NAME*", Environment),
        ("defaults", Defaults),
        ("server", ServerSettings),
        ("runtime", RuntimeSettings),
    ]
    for heading, settings_model in settings:
        page.lines += [f"### {heading}", ""]
        page.table(settings_model)
    page.lines += [
        "### Fields of every component",
        "",
        "Every entry of " + ", ".join(f"`{s}`" for s in SECTIONS[:-1])
        + f" and `{SECTIONS[-1]}` has these fields.",
        "",
    ]
    common = tuple(Component.model_fields)
    # Component and CheckBase are not in the schema themselves: read them through a subclass
    page.table(_section_model(SECTIONS[0]), only=common)
    for section in SECTIONS:
        component_model = _section_model(section)
        page.lines += [f"### {section}.*NAME*", ""]
        if set(component_model.model_fields) == set(common):
            page.lines += ["The fields of every component, and no others.", ""]
        else:
            page.lines += ["The fields of every component, and:", ""]
            page.table(component_model, skip=common)
    page.lines += [
        "### *SECTION*.*NAME*.environments.*ENV*",
        "",
        "Where the component is found in environment *ENV*; see "
        "[how a check's address is resolved](#how-a-checks-address-is-resolved).",
        "",
    ]
    page.table(Endpoint)
    _run_tables(page)
    page.lines += ["### Fields of every check", "",
                   "Every entry of a component's `checks` has these fields.", ""]
    base_fields = tuple(CheckBase.model_fields)
    page.table(CHECK_MODELS["http"], only=base_fields)
    for kind, check_model in CHECK_MODELS.items():
        page.lines += [f"### Check type `{kind}`", "", _CHECK_INTROS[kind], ""]
        page.table(check_model, skip=base_fields)
    page.lines += ["### The `json` condition of an `http` check", ""]
    page.table(JsonCondition)
    page.lines += ["### alerting: inhibition", "", "What mutes what; docs/alerting.md tells how "
                   "inhibition works.", ""]
    page.table(AlertingSettings, only=INHIBITION_FIELDS)
    page.lines += ["### alerting.intake", "", "Bounds on the alerts a Prometheus sends to "
                   "`POST /api/v2/alerts`; docs/alerting.md (\"Limits\") tells what happens past them.", ""]
    page.table(IntakeSettings)
    page.lines += ["### alerting.rules", "", "Each alert rule; docs/alerting.md tells how rules are "
                   "evaluated, routed and notified.", ""]
    page.table(AlertRule)
    _runbook_tables(page)
    return "\n".join(page.lines).rstrip("\n") + "\n"


def _runbook_tables(page: _Page) -> None:
    """The `runbooks:` section and its `auto` rules (docs/runbooks.md tells how they are used)."""
    from opsplane.runbooks.models import AutoRule, RunbooksSettings

    page.lines += ["### runbooks", ""]
    page.table(RunbooksSettings)
    page.lines += ["### runbooks.auto", "", "Each rule of the closed loop's policy; docs/runbooks.md "
                   "(\"The closed loop\") tells what happens when one covers an alert.", ""]
    page.table(AutoRule)




def _run_tables(page: _Page) -> None:
    """The `run` section of a component and its parts; docs/runtime.md tells how it behaves."""
    page.lines += [
        "### *SECTION*.*NAME*.run",
        "",
        "How `opsplane up` runs the component as supervised local processes "
        "(see [docs/runtime.md](runtime.md)). Instance 0 listens on the component's `port`; "
        "further instances get free loopback ports chosen by the supervisor, passed as `{port}`.",
        "",
    ]
    page.table(RunSettings)
    page.lines += ["### *SECTION*.*NAME*.run.backoff", "",
                   "The wait before the n-th crash in a row is restarted: "
                   "`initial * factor^(n-1)`, at most `max`.", ""]
    page.table(Backoff)
    page.lines += ["### *SECTION*.*NAME*.run.logs", ""]
    page.table(LogRotation)
    _backup_tables(page)
    _checklist_tables(page)
    _audit_tables(page)


def _checklist_tables(page: _Page) -> None:
    """The `checklists:` section (docs/checklists.md tells how it is used)."""
    from opsplane.checklists.models import ChecklistSchedule, ChecklistsSettings

    for heading, model in (("checklists", ChecklistsSettings),
                           ("checklists.schedules.*NAME*", ChecklistSchedule)):
        page.lines += [f"### {heading}", ""]
        page.table(model)


def _audit_tables(page: _Page) -> None:
    """The dependency audit: `services.NAME.dependencies` and `vulnerabilities:` (docs/dependencies.md)."""
    from opsplane.dependencies.models import DependencySources, FixTimes, VulnerabilitySettings

    for heading, model in (("services.*NAME*.dependencies", DependencySources),
                           ("vulnerabilities", VulnerabilitySettings),
                           ("vulnerabilities.fix_times", FixTimes)):
        page.lines += [f"### {heading}", ""]
        page.table(model)


def _backup_tables(page: _Page) -> None:
    """The `backup:` section, field by field (docs/backups.md tells how it is used)."""
    from opsplane.backup.models import (
        BackupPolicy,
        BackupSettings,
        FailoverSettings,
        FenceSettings,
        PgBouncerSettings,
        RepositorySettings,
        RetentionSettings,
        S3Settings,
        StandbySettings,
    )

    for heading, model in (("backup", BackupSettings), ("backup.repositories.*NAME*", RepositorySettings),
                           ("backup.repositories.*NAME*.s3", S3Settings),
                           ("backup.policies.*NAME*", BackupPolicy),
                           ("backup.policies.*NAME*.retention", RetentionSettings),
                           ("backup.failover.*DATABASE*", FailoverSettings),
                           ("backup.failover.*DATABASE*.standby", StandbySettings),
                           ("backup.failover.*DATABASE*.pgbouncer", PgBouncerSettings),
                           ("backup.failover.*DATABASE*.fence", FenceSettings)):
        page.lines += [f"### {heading}", ""]
        page.table(model)


def main(argv: list[str]) -> int:
    """`python -m opsplane.config.schema [--markdown]`: print the JSON Schema or the page."""
    if argv == ["--markdown"]:
        sys.stdout.write(render_markdown())
    elif not argv:
        sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")
    else:
        sys.stderr.write("usage: python -m opsplane.config.schema [--markdown]\n")
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
