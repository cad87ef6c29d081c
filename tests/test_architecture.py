"""The import picture of the house: packages import only inward, nothing imports the composition root.

`reports → integrations → orders → catalog → tenants → saas`: a package imports only packages to its
right. `quanyi` (the composition root) imports them all and nothing imports it: the worker and the CLI are
handed the app. These tests read every module with `ast`, so a new upward arrow or a new circle fails here
naming the file and the line.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMPOSITION_ROOT = "quanyi"
# Innermost first: each package may import those before it in this tuple, never those after.
LAYERS = ("saas", "tenants", "catalog", "orders", "integrations", "reports")


@dataclass(frozen=True)
class Import:
    """One import statement of one module of the app."""

    module: str
    target: str
    line: int
    in_function: bool

    @property
    def where(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports_of(module: str, tree: ast.AST, in_function: bool = False) -> list[Import]:
    found: list[Import] = []
    for node in ast.iter_child_nodes(tree):
        if _is_type_checking_block(node):
            continue  # never runs: annotations only
        inside = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno, inside) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [
                Import(module, f"{node.module}.{alias.name}", node.lineno, inside) for alias in node.names
            ]
        found += _imports_of(module, node, inside)
    return found


def app_modules() -> dict[str, Path]:
    """Return every module of the app by dotted name (migrations excluded: Alembic runs them)."""
    return {
        _module_name(path): path
        for package in (COMPOSITION_ROOT, *LAYERS)
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
    }


def app_imports() -> list[Import]:
    """Return every import between the app's own packages."""
    own = (COMPOSITION_ROOT, *LAYERS)
    found: list[Import] = []
    for module, path in app_modules().items():
        found += _imports_of(module, ast.parse(path.read_text(encoding="utf-8")))
    return [i for i in found if i.target.split(".")[0] in own]


def _package(name: str) -> str:
    return name.split(".")[0]


def test_nothing_imports_the_composition_root() -> None:
    offenders = [
        i.where
        for i in app_imports()
        if _package(i.target) == COMPOSITION_ROOT and _package(i.module) != COMPOSITION_ROOT
    ]
    assert offenders == []


def test_every_package_imports_only_packages_to_its_right() -> None:
    upward = [
        i.where
        for i in app_imports()
        if _package(i.module) in LAYERS
        and _package(i.target) in LAYERS
        and LAYERS.index(_package(i.target)) > LAYERS.index(_package(i.module))
    ]
    assert upward == []


def test_the_package_import_graph_has_no_circle() -> None:
    edges: dict[str, set[str]] = {}
    for i in app_imports():
        if _package(i.module) != _package(i.target):
            edges.setdefault(_package(i.module), set()).add(_package(i.target))
    assert _circles(edges) == []


def test_no_module_imports_itself_back_through_others_at_import_time() -> None:
    """A circle of module-level imports works only by the order modules happen to load; there is none."""
    edges: dict[str, set[str]] = {}
    modules = set(app_modules())
    for i in app_imports():
        if i.in_function:
            continue
        target = i.target if i.target in modules else i.target.rpartition(".")[0]
        if target != i.module:
            edges.setdefault(i.module, set()).add(target)
    assert _circles(edges) == []


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return circles


def test_signals_are_sent_one_way_through_saas_events() -> None:
    """Only `saas.events` touches blinker; every other package publishes and subscribes through it."""
    offenders = []
    for module, path in app_modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(name.split(".")[0] == "blinker" for name in names) and module != "saas.events":
                offenders.append(f"{module}:{node.lineno}")
    assert offenders == []


# ---------------------------------------------------------------- services own the commit

# Where a commit belongs (by file name ending): a use case (`services.py`), a job (`tasks.py`,
# `rollup_tasks.py`), a command (`cli.py`), demo data
# (`demo.py`), the transaction helper itself and the fan-out over tenants.
COMMITTING_ROLES = ("services.py", "tasks.py", "cli.py", "demo.py")
COMMITTING_MODULES = {"saas.extensions", "tenants.fanout"}
# Modules that commit although they are none of the above, each with the reason. A module that stops
# committing must leave this list (tested), so it only ever shrinks.
COMMITS_ALLOWED_ELSEWHERE = {
    # Use-case modules of a sub-domain: each is the services layer of its part, named after it.
    "catalog.inventory": "use cases of card-key inventory (imports, void, reveal)",
    "catalog.importing": "the card-key import's batch transaction (BEGIN IMMEDIATE, one commit per import)",
    "catalog.stock": "the low-stock alert fires once: its conditional UPDATE is committed before the mail",
    "catalog.keyring": "a tenant's data keys are committed before the long transaction that needs them",
    "orders.fulfilment": "use case: fulfil an order, fill backorders",
    "orders.redemption": "use case: redeem a grant",
    "orders.refunds": "use case: refund an order",
    "orders.delivery": "use case: deliver and resend",
    "orders.topup": "use case: a direct top-up, committed around the supplier call",
    "orders.customers": "use case: customers and their contact details",
    "orders.subscriptions.cancellation": "use case: cancel a subscription",
    "orders.subscriptions.reminders": "use case: send renewal reminders, once each",
    "orders.subscriptions.policy": "use case: save a plan's subscription policy",
    "orders.subscriptions.selfservice": "use case: the customer's own renewals and cancellation",
    "integrations.channels": "use cases of channels and SKU mappings",
    "integrations.outbound": "use cases of outbound webhooks (endpoints, deliveries, attempts)",
    "integrations.inbound.inbox": "one delivery per transaction (replays, refunds, what a batch leaves)",
    "integrations.inbound.drain": "the inbox drain: a batch of deliveries per transaction",
    "integrations.inbound.store": "the webhook endpoint stores a delivery before it answers the platform",
    "integrations.inbound.csv_upload": "use case: a CSV upload of orders through the inbox",
    "orders.portal.signin": "use case: a customer signs in to the portal by a one-time code",
    "orders.portal.family": "use case: a buyer adds and removes family members",
    "reports.reconciliation.settlement": "use case: import a channel's settlement file",
    "reports.rollups": "the rollup rebuild and refresh commit the rows they fold",
    # The platform's plumbing: these commit for a reason of their own.
    "saas.outbox": "the outbox claims and settles each message around the network call",
    "saas.shortlinks": "the outbox composes an SMS in a read it rolls back: the link must be durable first",
    "tenants.outbox": "`queue_mail` / `queue_sms`: record, commit and send a message (its own use case)",
    "tenants.jobruns": "a job run's status and heartbeat are committed while its job works",
    "integrations.inbound.targets": "TO FIX: commits a read to end it before the delivery's own transaction",
}


def _commit_lines(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "commit"
        and not node.args
    ]


def _may_commit(module: str, path: Path) -> bool:
    return (
        path.name.endswith(COMMITTING_ROLES)
        or module in COMMITTING_MODULES
        or module in COMMITS_ALLOWED_ELSEWHERE
    )


def test_services_own_the_commit() -> None:
    """A commit outside a service, job, command or the transaction helper is a bug or needs its reason."""
    offenders = [
        f"{module}:{line}"
        for module, path in app_modules().items()
        if not _may_commit(module, path)
        for line in _commit_lines(path)
    ]
    assert offenders == []


def test_every_module_allowed_to_commit_elsewhere_still_does() -> None:
    modules = app_modules()
    stale = [module for module in COMMITS_ALLOWED_ELSEWHERE if not _commit_lines(modules[module])]
    assert stale == []


def test_no_view_or_api_module_commits() -> None:
    committing = [
        module
        for module, path in app_modules().items()
        if path.name in ("views.py", "api.py", "models.py", "forms.py") and _commit_lines(path)
    ]
    assert committing == []


# ---------------------------------------------------------------- imports at the top

# Modules that still import one of the app's packages inside a function, waiting for their owners (these
# files were being changed by others when the rest moved up). No circle needs any of them.
LOCAL_IMPORTS_LEFT = {
    "saas.outbox",
    "orders.fulfilment",
    "integrations.inbound.inbox",
    "integrations.tasks",
    "reports",
}


def test_a_module_imports_the_app_at_its_top_where_a_reader_sees_it() -> None:
    inside = {i.module for i in app_imports() if i.in_function} - LOCAL_IMPORTS_LEFT
    assert sorted(inside) == []
