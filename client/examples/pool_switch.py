"""Switching API versions between transactions, in Python: psycopg 3 and
psycopg_pool (3.3 or later, for `ConnectionPool.drain`).

The protocol is the one of pgpm-client's Session and Watch (client/src/session.rs):

1. One connection per process LISTENs on the package's channel.
2. Every pooled connection selects its version once, as it is opened,
   without LISTEN (`_pgpm.set_search_path(package, requirement, false)`).
3. On each deploy the pool is drained: idle connections are replaced at
   once, connections in use when they are returned, that is, between
   transactions. A transaction in flight is never touched, and nothing a
   connection prepared (psycopg prepares what it runs often) outlives it.
   Deploy with `--mode revision` so that the revision in-flight
   transactions use is left as it is.

On a hot standby there is no NOTIFY: replace Watch with a thread that polls
`SELECT _pgpm.last_change()` every second or so and drains the pool when
the answer changes.

    pip install "psycopg[binary]" "psycopg_pool>=3.3"
    python3 client/examples/pool_switch.py "$DB" billing '^1.4' 30 \
        "SELECT format_amount(add_amounts(amount(100, 'EUR'), amount(250, 'EUR')))"
"""

import sys
import threading
import time

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool


class Watch:
    """Calls `on_deploy` for every deploy of `package` heard on one
    connection of its own (and after a reconnection, since what was sent
    meanwhile is lost)."""

    def __init__(self, dsn, package, on_deploy):
        self._dsn = dsn
        self._channel = "deployment_events$$" + package
        self._on_deploy = on_deploy
        self._ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait(10)

    def _run(self):
        while True:
            try:
                with psycopg.connect(self._dsn, autocommit=True) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    if self._ready.is_set():
                        self._on_deploy()
                    self._ready.set()
                    for _ in conn.notifies():
                        self._on_deploy()
            except psycopg.OperationalError:
                time.sleep(1)


def api_pool(dsn, package, requirement, **kwargs):
    """A pool whose connections use `requirement` of `package`, and a watch
    that replaces them, between transactions, after each deploy."""

    def select(conn):
        conn.execute("SELECT _pgpm.set_search_path(%s, %s, false)", (package, requirement))
        conn.commit()

    pool = ConnectionPool(dsn, configure=select, open=True, **kwargs)
    watch = Watch(dsn, package, on_deploy=pool.drain)
    return pool, watch


def main():
    dsn, package, requirement = sys.argv[1:4]
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 30
    query = sys.argv[5] if len(sys.argv) > 5 else "SELECT 1"
    pool, _watch = api_pool(dsn, package, requirement, min_size=4, max_size=4)
    calls = failed = 0
    schemas = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with pool.connection() as conn:
                # Prepared at once, as psycopg does after a few runs.
                conn.execute(query, prepare=True).fetchall()
                schemas.add(conn.execute("SELECT current_schema()").fetchone()[0])
            calls += 1
        except psycopg.Error as e:
            failed += 1
            print(f"failed: {e}", file=sys.stderr)
    pool.close()
    print(f"{calls} transactions, {failed} failed, schemas used: {', '.join(sorted(schemas))}")


if __name__ == "__main__":
    main()
