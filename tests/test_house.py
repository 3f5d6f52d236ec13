"""The shape of the house, read from the code: every import, at any depth in a module.

Areas are layered; an area imports only from itself and the layers below it, never from an
area beside it. The foundation (``clock``, ``errors``, ``extensions``, …) imports no area; its
modules may import each other (without a circle). ``docs/layout.md``
draws the same layers.
"""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "storefront"

# Packages below every area, beside the foundation's modules.
FOUNDATION_PACKAGES = ("events",)
# Bottom to top. An area not named here is foundation, below them all.
LAYERS = (
    ("catalog",),
    ("inventory",),
    ("cart", "listings"),
    ("orders",),
    ("payments",),
    ("shop",),
    ("admin",),
    ("cli", "health", "openapi"),
    ("storefront",),  # create_app: binds them all
)


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("storefront",) + path.relative_to(PACKAGE).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module → the project's modules it imports (a name imported from a package counts as the
    submodule when there is one: ``from storefront.admin import bp`` is the package itself)."""
    known = modules()
    graph = {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names if alias.name in known}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    imported.add(target if target in known else base)
        graph[name] = {target for target in imported if target in known and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "storefront"


def layer(module: str) -> int:
    for height, areas in enumerate(LAYERS, start=1):
        if area(module) in areas:
            return height
    return 0  # the foundation


def test_the_graph_is_read_from_the_code():
    graph = import_graph()
    # A few edges known to exist, read three ways: absolute, from a package, and a submodule by name.
    assert "storefront.inventory.stock" in graph["storefront.inventory.holds"]
    assert "storefront.admin" in graph["storefront.admin.products"]
    assert "storefront.catalog.models" in graph["storefront.inventory.stock"]
    assert len(graph) > 60


def test_no_module_imports_itself_round_a_circle():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def upward(module: str, target: str) -> bool:
    if area(module) == area(target):
        return False
    return layer(target) > layer(module) or layer(target) == layer(module) > 0


def test_areas_import_only_downward():
    found = sorted(f"{module} -> {target}" for module, targets in import_graph().items() for target in targets
                   if upward(module, target))
    assert found == []


def test_every_area_has_a_layer():
    areas = {area(module) for module in modules() if (PACKAGE / area(module)).is_dir()}
    assert areas <= {name for names in LAYERS for name in names} | set(FOUNDATION_PACKAGES)


@pytest.mark.parametrize("module", ["storefront.inventory.holds", "storefront.cart.checkout",
                                    "storefront.payments.completion", "storefront.orders.book"])
def test_an_upward_import_would_be_caught(module):
    graph = import_graph()
    graph[module] = graph[module] | {"storefront.shop.reservations"}
    assert [target for target in graph[module] if upward(module, target)] == ["storefront.shop.reservations"]
def test_area_code_never_commits_or_rolls_back_a_connection():
    """The way in (a view, a job, a command) opens the transaction with ``engine.begin()`` and
    owns it (a preview rolls its own back); the areas take a connection and leave its end to
    whoever began it."""
    calls = re.compile(r"\.(commit|rollback)\(\)")
    found = [f"{path.relative_to(PACKAGE)}:{number}" for path in sorted(PACKAGE.rglob("*.py"))
             if not str(path.relative_to(PACKAGE)).startswith(WAYS_IN)
             and not str(path.relative_to(PACKAGE)).endswith(WAYS_IN)
             for number, line in enumerate(path.read_text().splitlines(), start=1)
             if calls.search(line) and "db.session." not in line]
    assert found == []


# Modules below the ways in that open transactions of their own, and why: each count is pinned, so a
# new one is a decision made here, in review, not a habit that spreads.
OWN_TRANSACTIONS = {
    "inventory/holds.py": (2, "the hot path's grant step and the sweep, one transaction per product"),
    "payments/webhook.py": (4, "an event made durable before the webhook answers 2xx"),
    "payments/draws.py": (8, "a draw's walk: each step committed before Stripe captures or cancels, so a crash resumes it"),
    "payments/intents.py": (2, "Stripe is called with no transaction open; its answer is recorded after"),
    "payments/reconcile.py": (2, "Stripe asked between the transactions"),
    "payments/settlement.py": (5, "a settlement committed before its refund is issued with Stripe"),
    "listings/seed.py": (2, "the demo catalogue, loaded once"),
    "ratelimit.py": (5, "a limit's count (SQLite's, a failed login), its reset and the sweep's forgetting: its own table"),
}
WAYS_IN = ("shop/", "admin/", "cli.py", "jobs.py")  # views, commands and jobs (an area's jobs.py is its way in)


def test_transactions_opened_below_the_ways_in_are_the_ones_listed():
    calls = re.compile(r"engine\.begin\(\)|db\.session\.commit\(\)")
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = str(path.relative_to(PACKAGE))
        if relative.startswith(WAYS_IN) or relative.endswith(WAYS_IN):
            continue
        count = len(calls.findall(path.read_text()))
        if count:
            found[relative] = count
    assert found == {module: count for module, (count, _) in OWN_TRANSACTIONS.items()}


def test_the_advisory_locks_key_spaces_are_one_table_that_the_sql_quotes():
    """Every advisory lock goes through storefront/locks.py, and the live hold function takes its two
    by the numbers that table gives (pretix's KEY_SPACES: one place to see that no two collide)."""
    from storefront.locks import KeySpace

    assert len(set(KeySpace)) == len(KeySpace.__members__)  # no two names share a space
    others = [str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
              if "pg_advisory" in path.read_text() and path.name != "locks.py"]
    assert others == []
    live = max((PACKAGE / "inventory" / "sql").glob("place_hold_v*.sql"), key=lambda path: int(path.stem.removeprefix("place_hold_v")))
    taken = re.findall(r"hashtextextended\((\w+), (\d+)\)", live.read_text())
    spaces = {"p_visitor": KeySpace.VISITOR, "p_address": KeySpace.ADDRESS, "p_block": KeySpace.ADDRESS}
    assert taken and [(key, int(space)) for key, space in taken] == [(key, spaces[key]) for key, _ in taken]


ENQUEUED = re.compile(r"""enqueue\(\s*["'](storefront(?:\.\w+)+)\.\w+["']""")


def enqueued_by_name() -> dict[str, set[str]]:
    """Module → the modules whose jobs it enqueues by dotted path: an import the graph cannot see."""
    found = {}
    for name, path in modules().items():
        targets = set(ENQUEUED.findall(path.read_text()))
        if targets:
            found[name] = targets
    return found


def test_no_job_is_enqueued_by_name_above_its_caller():
    found = sorted(f"{module} -> {target}" for module, targets in enqueued_by_name().items() for target in targets
                   if upward(module, target))
    assert found == []
    assert "storefront.payments.jobs" in enqueued_by_name()["storefront.payments.jobs"]  # the reading works


def test_an_upward_enqueue_would_be_caught():
    text = 'jobs.enqueue("storefront.payments.jobs.complete_payment", message)'
    assert ENQUEUED.findall(text) == ["storefront.payments.jobs"]
    assert upward("storefront.events.bus", "storefront.payments.jobs")


HOLD_OWNER = "inventory/hold_rows.py"
WRITES_HOLDS = re.compile(r"(update|insert|delete)\(\s*holds\b|\b(UPDATE|INSERT INTO|DELETE FROM)\s+holds\b")
# A hold's expiry compared, in SQL (holds.c.expires_at) or on a row read (hold., line.): "is it live?"
COMPARES_EXPIRY = re.compile(r"(holds\.c|\bhold|\bline)\.expires_at\s*[<>]|[<>]=?\s*(holds\.c|\bhold|\bline)\.expires_at")


def _python_modules_but(owner: str):
    return [(str(path.relative_to(PACKAGE)), path.read_text()) for path in sorted(PACKAGE.rglob("*.py"))
            if str(path.relative_to(PACKAGE)) != owner]


def test_the_holds_table_has_one_python_writer():
    """Placing, releasing, lapsing, paying and reconciling a hold all change its row through
    inventory/hold_rows.py (the PL/pgSQL hold function is the measured fast path beside it)."""
    found = [f"{name}:{number}" for name, text in _python_modules_but(HOLD_OWNER)
             for number, line in enumerate(text.splitlines(), start=1) if WRITES_HOLDS.search(line)]
    assert found == []
    assert WRITES_HOLDS.search((PACKAGE / HOLD_OWNER).read_text())  # the reading works


def test_live_is_defined_once():
    """No module but the hold's owner compares a hold's expires_at: the others ask it (live, lapsed)."""
    found = [f"{name}:{number}" for name, text in _python_modules_but(HOLD_OWNER)
             for number, line in enumerate(text.splitlines(), start=1) if COMPARES_EXPIRY.search(line)]
    assert found == []
    assert COMPARES_EXPIRY.search("is_pending & (holds.c.expires_at > now)")
    assert COMPARES_EXPIRY.search("hold.expires_at <= now") and not COMPARES_EXPIRY.search("entry.pass_expires_at > now")


def test_404_is_said_one_way_and_refusals_come_from_one_table():
    """Every 404 is errors.not_found (never abort(404), never an ApiError of its own); every refusal of a
    hold, a checkout, a cart line, a delivery or a place comes from shop/refusals.py's table, its text written
    once (the admin's, said to the owner, are its own)."""
    said = [f"{name}:{number}" for name, text in _python_modules_but("errors.py")
            for number, line in enumerate(text.splitlines(), start=1)
            if re.search(r"abort\(404|ApiError\(404", line)]
    assert said == []
    codes = ("not_on_sale", "out_of_stock", "hold_limit", "buyer_limit", "paused", "not_admitted", "queue_closed",
             "queue_not_open", "too_many_entries", "empty_cart", "cart_full", "mixed_currencies", "no_queue")
    written = [f"{name}: {code}" for name, text in _python_modules_but("shop/refusals.py") for code in codes
               if name.startswith("shop/") and re.search(rf"ApiError\(\d+, \"{code}\"", text)]
    assert written == []
