"""The audit database's schema, as numbered migrations (``PRAGMA user_version``).

Each migration runs once, in order, inside one transaction with the version bump; a
database newer than this code is refused rather than guessed at.

``actions`` holds one row per decision and per action taken (undo and expiry
reversals included): an intent is written ``pending`` before its API call, then
finished as ``done``, ``failed``, ``skipped`` or ``observed``. The partial UNIQUE index
on ``(msg_id, rule, action)`` makes a message delivered twice (a reconnect) harmless;
``undo_of`` is UNIQUE, so an action is undone at most once. ``timers`` are the
reversals due later (unmute at expiry, comments back on); ``handles`` caches the
numeric user id of each watched streamer.

``outcomes`` is a view to insert into, never read: each row inserted finishes one
action (status, error, params merged) and adds its timer if it has one, through an
``INSTEAD OF`` trigger. One multi-row ``INSERT`` is one statement, so a status and its
timer are written together or not at all without a transaction around them.
"""

from __future__ import annotations

# What an unban ends in ``bans``, whether its row is finished (``bans_end``) or written
# done at once (``bans_end_recorded``, a moderator's unban recorded): one body, two triggers.
_END_BAN = """UPDATE bans SET ended = NEW.updated, ended_by = NEW.id,
            version = (SELECT max(version) + 1 FROM bans)
        WHERE ended IS NULL AND user_id = NEW.user_id
            AND (everywhere = 1 OR streamer = NEW.streamer COLLATE NOCASE);"""

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema
    """
    CREATE TABLE actions (
        id          INTEGER PRIMARY KEY,
        ts          TEXT    NOT NULL,               -- when it was decided (ISO 8601 UTC)
        streamer    TEXT    NOT NULL,
        room_id     TEXT    NOT NULL DEFAULT '',
        user_id     TEXT    NOT NULL DEFAULT '',
        unique_id   TEXT    NOT NULL DEFAULT '',
        rule        TEXT    NOT NULL,
        rule_hash   TEXT    NOT NULL DEFAULT '',
        action      TEXT    NOT NULL,               -- mute ban reply comments log warn unmute unban
        params      TEXT    NOT NULL DEFAULT '{}',  -- JSON
        mode        TEXT    NOT NULL,               -- enforce observe
        status      TEXT    NOT NULL,               -- pending done failed skipped observed
        detail      TEXT    NOT NULL DEFAULT '',    -- why the rule fired, or why skipped
        error       TEXT,
        msg_id      TEXT    NOT NULL DEFAULT '',    -- the triggering message
        msg_text    TEXT    NOT NULL DEFAULT '',
        undo_of     INTEGER UNIQUE REFERENCES actions(id),
        undone_by   INTEGER REFERENCES actions(id),
        reason      TEXT,
        updated     TEXT    NOT NULL
    );
    CREATE UNIQUE INDEX actions_once ON actions(msg_id, rule, action)
        WHERE msg_id != '' AND undo_of IS NULL;
    CREATE INDEX actions_ts ON actions(ts);
    CREATE INDEX actions_user ON actions(user_id, ts);
    CREATE INDEX actions_rule ON actions(rule, ts);
    CREATE INDEX actions_status ON actions(status) WHERE status = 'pending';

    CREATE TABLE timers (
        id          INTEGER PRIMARY KEY,
        due         REAL    NOT NULL,               -- epoch seconds
        kind        TEXT    NOT NULL,               -- unmute, comments_on
        streamer    TEXT    NOT NULL,
        room_id     TEXT    NOT NULL,
        user_id     TEXT    NOT NULL DEFAULT '',
        action_id   INTEGER NOT NULL REFERENCES actions(id),
        status      TEXT    NOT NULL DEFAULT 'pending',  -- pending done failed cancelled
        error       TEXT
    );
    CREATE INDEX timers_due ON timers(due) WHERE status = 'pending';

    CREATE TABLE handles (
        unique_id   TEXT PRIMARY KEY,
        user_id     TEXT NOT NULL,
        resolved    TEXT NOT NULL
    );
    """,
    # 2: outcomes in one statement (a status and its expiry timer together)
    """
    CREATE VIEW outcomes (id, status, error, updated, patch, due, kind, streamer, room_id,
                          user_id)
        AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE 0;
    CREATE TRIGGER outcomes_insert INSTEAD OF INSERT ON outcomes
    BEGIN
        UPDATE actions SET status = NEW.status, error = NEW.error, updated = NEW.updated,
            params = CASE WHEN NEW.patch IS NULL THEN params
                          ELSE json_patch(params, NEW.patch) END
        WHERE id = NEW.id;
        INSERT INTO timers (due, kind, streamer, room_id, user_id, action_id)
            SELECT NEW.due, NEW.kind, NEW.streamer, NEW.room_id, NEW.user_id, NEW.id
            WHERE NEW.due IS NOT NULL;
    END;
    """,
    # 3: requests from the console to the running daemon (``modbot nuke``), see
    # modbot/audit/requests.py: the command writes one, the daemon takes and answers it
    """
    CREATE TABLE requests (
        id          INTEGER PRIMARY KEY,
        ts          TEXT    NOT NULL,               -- when it was asked (ISO 8601 UTC)
        kind        TEXT    NOT NULL,               -- nuke
        args        TEXT    NOT NULL DEFAULT '{}',  -- JSON
        status      TEXT    NOT NULL DEFAULT 'pending',  -- pending taken done failed expired
        answer      TEXT,                           -- JSON: what the daemon did
        taken_by    TEXT,                           -- the daemon that took it (host:pid)
        updated     TEXT    NOT NULL
    );
    CREATE INDEX requests_pending ON requests(status) WHERE status = 'pending';
    """,
    # 4: bans remembered across lives (modbot/audit/bans.py). A TikTok LIVE ban belongs
    # to one room; modbot keeps its own: every ban it made (by rule or by hand) and that
    # was not lifted, kept in step by triggers whoever writes the row (the daemon, a
    # command in another process). A done ban is remembered (not a re-ban of a
    # remembered one, not a moderator's own); a done unban of the viewer (an undo, a
    # command, a moderator's unban seen on the WebSocket) ends every memory of them that
    # applies to its streamer. ``version`` grows with every change: the daemon polls it.
    # The bans made before this version are remembered too, unless an unban came after,
    # but only those of the last 30 days: before this version a moderator's unban was
    # never recorded, so an older ban may have been forgiven long since (the upgrade
    # logs how many it took: ``audit.bans_remembered_on_upgrade``).
    f"""
    CREATE TABLE bans (
        action_id   INTEGER PRIMARY KEY REFERENCES actions(id),  -- the ban remembered
        user_id     TEXT    NOT NULL,
        unique_id   TEXT    NOT NULL DEFAULT '',
        streamer    TEXT    NOT NULL,               -- where it was made
        room_id     TEXT    NOT NULL DEFAULT '',    -- the room it was made in
        everywhere  INTEGER NOT NULL DEFAULT 0,     -- 1: every configured streamer
        since       TEXT    NOT NULL,
        ended       TEXT,                           -- NULL: still remembered
        ended_by    INTEGER REFERENCES actions(id), -- the unban that ended it
        version     INTEGER NOT NULL
    );
    CREATE INDEX bans_version ON bans(version);
    CREATE INDEX bans_user ON bans(user_id) WHERE ended IS NULL;
    INSERT INTO bans (action_id, user_id, unique_id, streamer, room_id, everywhere, since,
                      version)
        SELECT b.id, b.user_id, b.unique_id, b.streamer, b.room_id,
               CASE WHEN json_valid(b.params)
                     AND json_extract(b.params, '$.everywhere') = 1 THEN 1 ELSE 0 END,
               b.updated, 1
        FROM actions AS b
        WHERE b.action = 'ban' AND b.status = 'done' AND b.mode = 'enforce'
            AND b.user_id != '' AND b.undo_of IS NULL AND b.rule != 'moderator'
            AND b.ts >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-30 days')
            AND (NOT json_valid(b.params) OR json_extract(b.params, '$.remembered') IS NULL)
            AND NOT EXISTS (
                SELECT 1 FROM actions AS u
                WHERE u.action = 'unban' AND u.status = 'done' AND u.user_id = b.user_id
                    AND u.id > b.id AND u.streamer = b.streamer COLLATE NOCASE);
    CREATE TRIGGER bans_remember AFTER UPDATE OF status ON actions
    WHEN NEW.action = 'ban' AND NEW.status = 'done' AND OLD.status != 'done'
        AND NEW.mode = 'enforce' AND NEW.user_id != '' AND NEW.undo_of IS NULL
        AND NEW.rule != 'moderator'
        AND (NOT json_valid(NEW.params) OR json_extract(NEW.params, '$.remembered') IS NULL)
    BEGIN
        INSERT OR IGNORE INTO bans (action_id, user_id, unique_id, streamer, room_id,
                                    everywhere, since, version)
        VALUES (NEW.id, NEW.user_id, NEW.unique_id, NEW.streamer, NEW.room_id,
                CASE WHEN json_valid(NEW.params)
                      AND json_extract(NEW.params, '$.everywhere') = 1 THEN 1 ELSE 0 END,
                NEW.updated, (SELECT coalesce(max(version), 0) + 1 FROM bans));
    END;
    CREATE TRIGGER bans_end AFTER UPDATE OF status ON actions
    WHEN NEW.action = 'unban' AND NEW.status = 'done' AND OLD.status != 'done'
        AND NEW.user_id != ''
    BEGIN
        {_END_BAN}
    END;
    CREATE TRIGGER bans_end_recorded AFTER INSERT ON actions
    WHEN NEW.action = 'unban' AND NEW.status = 'done' AND NEW.user_id != ''
    BEGIN
        {_END_BAN}
    END;
    """,  # noqa: S608 (constant text: _END_BAN is this module's, nothing comes in)
    # 5: incidents (modbot/audit/incidents.py): the rows of one operation (a ban in every
    # streamer's room, a nuke, a raid swept whole), undone whole with `undo --incident N`.
    # ``incidents`` gives the numbers (no two processes share one); a row belongs to one
    # by its params' "incident", which the generated column reads (rows written before
    # this migration included), so no writer names the column. Numbers already in rows
    # are taken into the table, and new ones come after them.
    """
    CREATE TABLE incidents (
        id          INTEGER PRIMARY KEY,
        ts          TEXT    NOT NULL,               -- when it began (ISO 8601 UTC)
        kind        TEXT    NOT NULL,               -- ban, unban, nuke, sweep ...
        streamer    TEXT    NOT NULL DEFAULT '',    -- a handle, or everywhere
        detail      TEXT    NOT NULL DEFAULT '',
        made_by     TEXT,                           -- who ran the command
        token       TEXT    UNIQUE                  -- the writer reads its number back by it
    );
    ALTER TABLE actions ADD COLUMN incident INTEGER GENERATED ALWAYS AS (
        CASE WHEN instr(params, '"incident"') AND json_valid(params)
                  AND json_type(params, '$.incident') = 'integer'
             THEN json_extract(params, '$.incident') END
    ) VIRTUAL;
    CREATE INDEX actions_incident ON actions(incident) WHERE incident IS NOT NULL;
    INSERT OR IGNORE INTO incidents (id, ts, kind, streamer, detail)
        SELECT incident, min(ts), 'earlier', min(streamer),
               'numbered before incidents had a table'
        FROM actions WHERE incident IS NOT NULL AND incident > 0 GROUP BY incident;
    """,
    # 6: an incident stopped (`undo --incident N`): a nuke or raid sweep still running in
    # the daemon sees it on its next poll and acts on no one more. ``stopped``: when
    # (ISO 8601 UTC), NULL while it may go on.
    """
    ALTER TABLE incidents ADD COLUMN stopped TEXT;
    """,
)

VERSION = len(MIGRATIONS)

# What an upgrade says it did, after a migration (its number): the log event, and the
# query of the count it logs.
REPORTS: dict[int, tuple[str, str]] = {
    4: ("audit.bans_remembered_on_upgrade", "SELECT count(*) FROM bans"),
}
