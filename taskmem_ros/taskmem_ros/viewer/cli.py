"""`taskmem-viewer --db URL [--clips DIR] [--port 8080]`: serve the viewer with uvicorn."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from taskmem_ros.config import ConfigError, StoreConfig, TaskMemConfig, ViewerConfig, load_config
from taskmem_ros.store.engine import db_url

log = logging.getLogger(__name__)

EMBEDDERS = {"all-MiniLM-L6-v2": "minilm"}  # store_meta's embedder id -> store.embedder


def store_config(base: StoreConfig, url: str) -> StoreConfig:
    """``base`` pointed at ``url``, with the embedder the database was built with (read from
    the database itself), so a viewer never needs to be told which one."""
    from dataclasses import replace

    from taskmem_ros.store.browse import stored_meta

    cfg = replace(base, url=url)
    meta = stored_meta(cfg)
    model, dim = meta.get("embedder", ""), int(meta.get("embedding_dim", cfg.embedding_dim))
    name = "hash" if model.startswith("hash-") else EMBEDDERS.get(model, cfg.embedder)
    return replace(cfg, embedder=name, embedding_dim=dim)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="taskmem-viewer", description=__doc__.splitlines()[0])
    p.add_argument("--db", required=True, help="the store: sqlite:///PATH, PATH, or any SQLAlchemy URL")
    p.add_argument("--clips", default="", help="the clip archive (ingest.keep_clips_dir) for keyframe thumbnails")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (non-loopback needs --token)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--token", default=os.environ.get("TASKMEM_VIEWER_TOKEN", ""), help="access token (or $TASKMEM_VIEWER_TOKEN)"
    )
    p.add_argument("--params", help="a params file (config/robot.yaml) for the answerer settings")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        from taskmem_ros.store import EpisodicStore, StoreError

        cfg = load_config(args.params, node="task_server") if args.params else TaskMemConfig()
        viewer = ViewerConfig(host=args.host, port=args.port, token=args.token, clips_dir=args.clips)
        cfg.store = store_config(cfg.store, db_url(args.db))
        store = EpisodicStore(cfg.store, read_only=True).open()
    except (ConfigError, StoreError) as exc:
        print(f"taskmem-viewer: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"taskmem-viewer: {exc}; install the 'viewer' extra (pip install 'taskmem_ros[viewer]')", file=sys.stderr)
        return 2
    try:
        import uvicorn

        from taskmem_ros.viewer.app import create_app
    except ImportError as exc:
        store.close()
        print(f"taskmem-viewer: {exc}; install the 'viewer' extra (pip install 'taskmem_ros[viewer]')", file=sys.stderr)
        return 2
    store.warm()  # the RAM vector index and the embedder load now, not on the first question
    store.embedder.embed(["warm up"])
    app = create_app(cfg, viewer, store=store)
    print(f"taskmem-viewer: http://{viewer.host}:{viewer.port}/  (store {cfg.store.url}, read-only)", flush=True)
    try:
        uvicorn.run(app, host=viewer.host, port=viewer.port, log_level="warning", access_log=False)
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
