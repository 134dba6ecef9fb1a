"""`taskmem-store`: maintenance of episodic stores.

``taskmem-store sync --from sqlite:///robot.db --to postgresql+psycopg://user@host/fleet``
copies a robot's offline memory (entries with clips and vectors, tasks, adapters) into the
fleet store; re-running it adds nothing (see ``taskmem_ros.store.sync``).
``taskmem-store stats --url URL`` prints sizes and capabilities as JSON.
``taskmem-store forget --url URL --text "blue cabinet"`` previews what would be forgotten
(entries matching every content word; also ``--ids``, ``--stream``, ``--from-ns/--to-ns``,
``--kind``); ``--apply`` forgets it (``--by`` and ``--reason`` go to the forget log, never the
text). An empty selector is refused unless ``--everything`` (see ``taskmem_ros.store.forget``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from typing import Any

from tqdm import tqdm

from taskmem_ros.config import ConfigError, StoreConfig
from taskmem_ros.store.engine import db_url

log = logging.getLogger("taskmem-store")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="taskmem-store", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sync", help="copy one store into another, idempotently")
    s.add_argument("--from", dest="src", required=True, type=db_url, help="source store URL (or SQLite path)")
    s.add_argument("--to", dest="dst", required=True, type=db_url, help="destination store URL (or SQLite path)")
    s.add_argument("--embedder", default=None, help="store.embedder of both stores (default: the source's)")
    s.add_argument("--batch", type=int, default=2000, help="entries per destination transaction")
    s.add_argument("--no-progress", action="store_true")
    st = sub.add_parser("stats", help="print a store's sizes and capabilities")
    st.add_argument("--url", required=True, type=db_url)
    st.add_argument("--embedder", default=None)
    f = sub.add_parser("forget", help="preview, then with --apply forget, memories")
    f.add_argument("--url", required=True, type=db_url)
    f.add_argument("--embedder", default=None)
    f.add_argument("--ids", default="", help="comma-separated entry ids")
    f.add_argument("--stream", default=None)
    f.add_argument("--from-ns", dest="start_ns", type=int, default=None, help="observation window overlaps [from, to]")
    f.add_argument("--to-ns", dest="end_ns", type=int, default=None)
    f.add_argument("--kind", default=None, choices=("episodic", "semantic"))
    f.add_argument("--text", default=None, help="entries containing every content word of this text")
    f.add_argument("--everything", action="store_true", help="allow a selector without criteria (all entries)")
    f.add_argument("--apply", action="store_true", help="forget (default: dry run, print what would go)")
    f.add_argument("--by", default="cli", help="who asked (kept in the forget log)")
    f.add_argument("--reason", default="")
    f.add_argument("--clips-dir", default="", help="the clip archive (ingest.keep_clips_dir) to delete files from")
    args = p.parse_args(argv)
    if args.command == "sync" and args.batch < 1:
        p.error(f"--batch={args.batch} must be >= 1")
    return args


def _embedder_of(url: str, given: str | None) -> str:
    """The embedder a store was built with (from its metadata), so vectors can be copied."""
    if given:
        return given
    import sqlalchemy as sa

    from taskmem_ros.store import StoreError
    from taskmem_ros.store.engine import create_store_engine

    try:
        se = create_store_engine(StoreConfig(url=url, embedder="hash"))
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"cannot open {url!r}", cause=exc) from exc
    try:
        with se.engine.connect() as conn:
            value = conn.execute(sa.text("SELECT value FROM store_meta WHERE key = 'embedder'")).scalar()
    except sa.exc.DBAPIError:
        value = None
    finally:
        se.engine.dispose()
    return "minilm" if value is None or "minilm" in str(value).lower() else "hash"


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = _parse(argv)
    from taskmem_ros.store import EpisodicStore, StoreError
    from taskmem_ros.store.sync import sync_stores

    try:
        if args.command == "stats":
            with EpisodicStore(StoreConfig(url=args.url, embedder=_embedder_of(args.url, args.embedder))) as store:
                print(json.dumps(store.stats(), indent=2, default=str))
            return 0
        if args.command == "forget":
            return _forget(args)
        embedder = _embedder_of(args.src, args.embedder)
        bar: Any = None

        def progress(phase: str, done: int, total: int) -> None:
            nonlocal bar
            if args.no_progress:
                return
            if bar is None or bar.desc != phase:
                if bar is not None:
                    bar.close()
                bar = tqdm(total=total, desc=phase, unit=" rows", file=sys.stderr)
            bar.update(done - bar.n)

        with (
            EpisodicStore(StoreConfig(url=args.src, embedder=embedder)) as src,
            EpisodicStore(StoreConfig(url=args.dst, embedder=embedder)) as dst,
        ):
            report = sync_stores(src, dst, batch=args.batch, progress=progress)
        if bar is not None:
            bar.close()
        print(json.dumps(dataclasses.asdict(report)))
        return 0
    except (StoreError, ConfigError, ValueError) as exc:
        print(f"taskmem-store: {exc}", file=sys.stderr)
        return 1


def _forget(args: argparse.Namespace) -> int:
    from taskmem_ros.store import EpisodicStore
    from taskmem_ros.store.forget import ForgetSelector

    try:
        ids = tuple(int(x) for x in args.ids.split(",") if x.strip())
    except ValueError as exc:
        raise ValueError(f"--ids={args.ids!r} must be comma-separated integers") from exc
    sel = ForgetSelector(
        ids=ids,
        stream=args.stream,
        start_ns=args.start_ns,
        end_ns=args.end_ns,
        kind=args.kind,
        text=args.text,
        everything=args.everything,
    )
    with EpisodicStore(StoreConfig(url=args.url, embedder=_embedder_of(args.url, args.embedder))) as store:
        res = store.forget(
            sel, dry_run=not args.apply, requested_by=args.by, reason=args.reason, clips_dir=args.clips_dir or None
        )
    out = {
        "dry_run": res.dry_run,
        "entries": res.entries,
        "clips": res.clips,
        "forget_id": res.forget_id,
        "files_deleted": res.files_deleted,
        "files_pending": res.files_pending,
        "preview": [{"id": r.id, "stream": r.stream, "end_ns": r.end_ns, "text": r.text} for r in res.preview],
    }
    print(json.dumps(out, indent=2))
    if res.dry_run and res.entries:
        print(f"taskmem-store: dry run; add --apply to forget these {res.entries} entries", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
