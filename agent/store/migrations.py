"""The record's schema, one entry per version: `RecordStore.migrate` applies the entries a
database has not seen yet (`PRAGMA user_version` counts them). Append, never edit: a released
entry is already applied in users' databases."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: catalog and interactions.
    """
    CREATE TABLE users (
        user_id TEXT PRIMARY KEY,
        attributes TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE items (
        item_id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        categories TEXT NOT NULL DEFAULT '[]',
        description TEXT NOT NULL DEFAULT '',
        year INTEGER,
        attributes TEXT NOT NULL DEFAULT '{}',
        content_hash TEXT NOT NULL
    );
    CREATE TABLE interactions (
        id INTEGER PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(user_id),
        item_id TEXT NOT NULL REFERENCES items(item_id),
        ts_ms INTEGER NOT NULL,
        event_type TEXT NOT NULL,
        rating REAL,
        review_title TEXT,
        review_text TEXT,
        attributes TEXT NOT NULL DEFAULT '{}',
        dedupe_key BLOB NOT NULL UNIQUE
    );
    CREATE INDEX interactions_by_user_time ON interactions(user_id, ts_ms, id);
    CREATE INDEX interactions_by_item ON interactions(item_id);
    CREATE TABLE ingests (
        id INTEGER PRIMARY KEY,
        format TEXT NOT NULL,
        files TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        report TEXT NOT NULL
    );
    """,
    # 2: profiles, one row per version (the latest is the highest version of a user).
    """
    CREATE TABLE profile_versions (
        user_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        kind TEXT NOT NULL,
        history_hash TEXT NOT NULL,
        model TEXT NOT NULL,
        prompt_id TEXT NOT NULL,
        prompt_version INTEGER NOT NULL,
        prompt_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        profile TEXT NOT NULL,
        PRIMARY KEY (user_id, version)
    );
    """,
    # 3: segments of users (k-means over profile vectors), one run per `personae segments`.
    """
    CREATE TABLE segment_runs (
        id INTEGER PRIMARY KEY,
        k INTEGER NOT NULL,
        seed INTEGER NOT NULL,
        algorithm TEXT NOT NULL,
        embedding_model TEXT NOT NULL,
        users INTEGER NOT NULL,
        inertia REAL NOT NULL,
        model TEXT,
        prompt_id TEXT,
        prompt_version INTEGER,
        prompt_hash TEXT,
        created_at TEXT NOT NULL
    );
    CREATE TABLE segments (
        run_id INTEGER NOT NULL REFERENCES segment_runs(id) ON DELETE CASCADE,
        segment INTEGER NOT NULL,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        named_by TEXT NOT NULL,
        top_interests TEXT NOT NULL,
        PRIMARY KEY (run_id, segment)
    );
    CREATE TABLE segment_members (
        run_id INTEGER NOT NULL,
        segment INTEGER NOT NULL,
        user_id TEXT NOT NULL,
        profile_version INTEGER NOT NULL,
        distance REAL NOT NULL,
        PRIMARY KEY (run_id, user_id),
        FOREIGN KEY (run_id, segment) REFERENCES segments(run_id, segment) ON DELETE CASCADE
    );
    CREATE INDEX segment_members_by_user ON segment_members(user_id);
    """,
    # 4: a user's own edits of their profile (`agent.profiles.edits`): the current state, one
    # JSON document per user, re-applied to every profile version the LLM writes later.
    # Deleting the user row (`personae forget`) deletes it.
    """
    CREATE TABLE profile_edits (
        user_id TEXT PRIMARY KEY REFERENCES users(user_id) ON DELETE CASCADE,
        edits TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
]
