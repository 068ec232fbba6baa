"""Forward-only schema migrations, applied on every open (sqlite-utils' Migrations).

A released migration stays as it shipped; changes go in the next one.
"""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("cairn")

FTS_TOKENIZE = "porter unicode61 remove_diacritics 2"


@migrations()
def m001_initial(db: Database) -> None:
    db.executescript(
        f"""
        create table sources (
            id integer primary key,
            kind text not null,             -- note, chat, agent_session, screenshot, cli, mcp, import
            uri text not null unique,       -- absolute path, or cli: / mcp:<client>
            content_hash text,              -- of the whole file at the last read
            mtime real,
            size integer,
            read_offset integer not null default 0,  -- bytes already read, for growing logs
            trust_prior real not null,
            status text not null default 'live',     -- live, deleted
            created_at text not null,
            updated_at text not null
        );
        create table episodes (
            id integer primary key,         -- explicit: fts/vec rowids must not be renumbered
            source_id integer not null references sources(id) on delete cascade,
            locator text not null,          -- message id as in the input; L12-L20; x,y,w,h
            speaker text,
            role text not null,             -- user, assistant, other, third_party
            occurred_at text,               -- when it happened in the source (ISO-8601 UTC)
            text text not null,             -- verbatim, redacted
            context text not null default '',  -- heading path, conversation title: searchable
            content_hash text not null,     -- 'b2:' blake2b of the text
            trust real not null,
            quarantined integer not null default 0,  -- instruction-shaped content
            extracted_by text,              -- name@version of the last extractor run on it
            extraction_error text,          -- why the last extraction failed, if it did
            created_at text not null,
            unique (source_id, locator, content_hash)
        );
        create index episodes_content_hash on episodes(content_hash);
        create index episodes_occurred_at on episodes(occurred_at);
        create index episodes_source on episodes(source_id);
        create index episodes_speaker on episodes(speaker);
        create table facts (
            id integer primary key,
            text text not null,             -- one short self-contained statement
            kind text not null,             -- preference, biography, relationship, event, decision, task, knowledge
            subject text,
            attribute text,                 -- with subject: what a contradiction is about
            value text,
            valid_from text,                -- when it is true in the world
            valid_to text,
            recorded_at text not null,
            updated_at text not null,
            status text not null default 'active',  -- active, superseded, quarantined, archived
            superseded_by integer references facts(id) on delete set null,
            trust real not null,
            strength real not null default 1.0,
            pinned integer not null default 0,
            last_recalled_at text,
            recall_count integer not null default 0,
            project text,
            tags text not null default '[]',  -- JSON list
            origin text not null,           -- typed (cli/mcp remember) or extracted
            content_hash text not null      -- of the normalised text: the MERGE key
        );
        create index facts_content_hash on facts(content_hash);
        create index facts_subject_attribute on facts(subject, attribute);
        create index facts_status on facts(status);
        create table supports (
            fact_id integer not null references facts(id) on delete cascade,
            episode_id integer not null references episodes(id) on delete cascade,
            extractor text not null,        -- name@version
            confidence real not null,
            created_at text not null,
            primary key (fact_id, episode_id)
        );
        create index supports_episode on supports(episode_id);
        create table tombstones (
            id integer primary key,
            kind text not null,             -- content (a hash) or uri
            value text not null,
            created_at text not null,
            unique (kind, value)
        );
        create table job_runs (
            id integer primary key,
            job text not null,
            started_at text not null,
            finished_at text,
            counts text not null default '{{}}',
            dry_run integer not null default 0,
            error text
        );
        create table embedding_models (
            id integer primary key,
            model_id text not null,
            dimensions integer not null,
            created_at text not null
        );
        create table counters (name text primary key, value integer not null default 0);

        create virtual table facts_fts using fts5(
            text, subject, content='facts', content_rowid='id', tokenize='{FTS_TOKENIZE}');
        insert into facts_fts(facts_fts, rank) values ('secure-delete', 1);
        create trigger facts_ai after insert on facts begin
            insert into facts_fts(rowid, text, subject) values (new.id, new.text, new.subject);
        end;
        create trigger facts_ad after delete on facts begin
            insert into facts_fts(facts_fts, rowid, text, subject)
                values ('delete', old.id, old.text, old.subject);
        end;
        create trigger facts_au after update of text, subject on facts begin
            insert into facts_fts(facts_fts, rowid, text, subject)
                values ('delete', old.id, old.text, old.subject);
            insert into facts_fts(rowid, text, subject) values (new.id, new.text, new.subject);
        end;

        create virtual table episodes_fts using fts5(
            text, speaker, context, content='episodes', content_rowid='id',
            tokenize='{FTS_TOKENIZE}');
        insert into episodes_fts(episodes_fts, rank) values ('secure-delete', 1);
        create trigger episodes_ai after insert on episodes begin
            insert into episodes_fts(rowid, text, speaker, context)
                values (new.id, new.text, new.speaker, new.context);
        end;
        create trigger episodes_ad after delete on episodes begin
            insert into episodes_fts(episodes_fts, rowid, text, speaker, context)
                values ('delete', old.id, old.text, old.speaker, old.context);
        end;
        create trigger episodes_au after update of text, speaker, context on episodes begin
            insert into episodes_fts(episodes_fts, rowid, text, speaker, context)
                values ('delete', old.id, old.text, old.speaker, old.context);
            insert into episodes_fts(rowid, text, speaker, context)
                values (new.id, new.text, new.speaker, new.context);
        end;
        """
    )


@migrations()
def m002_facts_recorded_at(db: Database) -> None:
    # `recent` (CLI and MCP) pages facts newest first: without it, a full sort (18 ms at 20k).
    db.execute("create index if not exists facts_recorded_at on facts(recorded_at, id)")


@migrations()
def m003_id_high_water_marks(db: Database) -> None:
    # Ids are never reused after a forget (see records.next_id).
    for t in ("facts", "episodes"):
        db.execute(f"""create trigger if not exists {t}_hwm after delete on {t} begin
            insert into counters(name, value) values ('hwm:{t}', old.id)
                on conflict(name) do update set value = max(value, excluded.value);
        end""")


@migrations()
def m004_searchable_episodes(db: Database) -> None:
    """A remembered memory is one text, stored as a fact and as the episode it was typed in:
    the episode is searched through its fact, not a second time. episodes.searchable = 0 keeps
    it out of episodes_fts (whose content is now the view of searchable episodes, so FTS5's
    'rebuild' and 'integrity-check' agree with it) and out of the episode vectors. Recall showed
    the pair as one hit anyway; searching it once halves the keyword and vector work on a store
    of typed memories."""
    db.executescript(
        """
        alter table episodes add column searchable integer not null default 1;
        drop trigger episodes_ai;
        drop trigger episodes_ad;
        drop trigger episodes_au;
        """
    )
    # Stores from before: the episodes of remembered facts whose text they are.
    typed = [r[0] for r in db.execute(
        "select e.id from episodes e join sources s on s.id = e.source_id"
        " where s.kind in ('cli', 'mcp')"
        " and (select count(*) from supports sp where sp.episode_id = e.id) = 1"
        " and exists (select 1 from supports sp join facts f on f.id = sp.fact_id"
        "             where sp.episode_id = e.id and f.origin = 'typed' and f.text = e.text)")]
    has_vectors = db["episodes_emb"].exists()
    for start in range(0, len(typed), 500):
        chunk = typed[start:start + 500]
        marks = ",".join("?" * len(chunk))
        db.execute(f"update episodes set searchable = 0 where id in ({marks})", chunk)
        if has_vectors:
            db.execute(f"delete from episodes_emb where id in ({marks})", chunk)
            db.execute(f"delete from episodes_vec where rowid in ({marks})", chunk)
    db.executescript(
        f"""
        drop table episodes_fts;
        create view episodes_searchable as
            select id, text, speaker, context from episodes where searchable;
        create virtual table episodes_fts using fts5(
            text, speaker, context, content='episodes_searchable', content_rowid='id',
            tokenize='{FTS_TOKENIZE}');
        insert into episodes_fts(episodes_fts, rank) values ('secure-delete', 1);
        insert into episodes_fts(episodes_fts) values ('rebuild');
        create trigger episodes_ai after insert on episodes when new.searchable begin
            insert into episodes_fts(rowid, text, speaker, context)
                values (new.id, new.text, new.speaker, new.context);
        end;
        create trigger episodes_ad after delete on episodes when old.searchable begin
            insert into episodes_fts(episodes_fts, rowid, text, speaker, context)
                values ('delete', old.id, old.text, old.speaker, old.context);
        end;
        create trigger episodes_au after update of text, speaker, context, searchable on episodes
        begin
            insert into episodes_fts(episodes_fts, rowid, text, speaker, context)
                select 'delete', old.id, old.text, old.speaker, old.context where old.searchable;
            insert into episodes_fts(rowid, text, speaker, context)
                select new.id, new.text, new.speaker, new.context where new.searchable;
        end;
        """
    )


def apply_migrations(conn: Any) -> None:
    """Apply pending migrations under the writer lock, so two processes opening a new
    store at once do not both create it."""
    db = Database(conn)
    if not migrations.pending(db):
        return
    from cairn.store.db import write_transaction

    with write_transaction(conn):
        migrations.apply(db)
