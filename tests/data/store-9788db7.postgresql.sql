-- A store as the last release before schema revisions (main 9788db7) wrote it on postgresql:
-- its tables (generated from that release's pipeline/storage/schema.py) and a few rows.
CREATE TABLE articles (
	id VARCHAR(64) NOT NULL,
	url TEXT NOT NULL,
	feed_id VARCHAR(200),
	outlet TEXT NOT NULL,
	title TEXT NOT NULL,
	text TEXT NOT NULL,
	author TEXT,
	published TIMESTAMP WITHOUT TIME ZONE,
	fetched_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
	arrived_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
	language VARCHAR(20),
	text_source VARCHAR(20) NOT NULL,
	text_source_reason TEXT,
	PRIMARY KEY (id),
	UNIQUE (url)
);

CREATE INDEX ix_articles_arrived_at ON articles (arrived_at);

CREATE TABLE cluster_aliases (
	absorbed_id VARCHAR(64) NOT NULL,
	survivor_id VARCHAR(64) NOT NULL,
	PRIMARY KEY (absorbed_id)
);

CREATE TABLE dirty_clusters (
	cluster_id VARCHAR(64) NOT NULL,
	PRIMARY KEY (cluster_id)
);

CREATE TABLE entries (
	url TEXT NOT NULL,
	feed_id VARCHAR(200) NOT NULL,
	title TEXT NOT NULL,
	summary TEXT,
	content TEXT,
	author TEXT,
	published TIMESTAMP WITHOUT TIME ZONE,
	guid TEXT,
	discovered_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
	state VARCHAR(20) NOT NULL,
	attempts INTEGER NOT NULL,
	last_error TEXT,
	PRIMARY KEY (url)
);

CREATE INDEX ix_entries_feed_id ON entries (feed_id);

CREATE INDEX ix_entries_state ON entries (state);

CREATE TABLE feeds (
	id VARCHAR(200) NOT NULL,
	name TEXT NOT NULL,
	url TEXT NOT NULL,
	language VARCHAR(20),
	tags JSON NOT NULL,
	poll_interval INTEGER,
	etag TEXT,
	last_modified TEXT,
	status VARCHAR(20) NOT NULL,
	consecutive_failures INTEGER NOT NULL,
	last_error TEXT,
	last_attempt_at TIMESTAMP WITHOUT TIME ZONE,
	last_success_at TIMESTAMP WITHOUT TIME ZONE,
	next_attempt_at TIMESTAMP WITHOUT TIME ZONE,
	entries_seen INTEGER NOT NULL,
	failure_score FLOAT DEFAULT '0' NOT NULL,
	learned_interval INTEGER,
	last_new_entry_at TIMESTAMP WITHOUT TIME ZONE,
	alerted_status VARCHAR(20),
	PRIMARY KEY (id)
);

CREATE TABLE memberships (
	article_id VARCHAR(64) NOT NULL,
	cluster_id VARCHAR(64) NOT NULL,
	matched_article_id VARCHAR(64),
	jaccard FLOAT,
	containment FLOAT,
	PRIMARY KEY (article_id)
);

CREATE INDEX ix_memberships_cluster_id ON memberships (cluster_id);

CREATE TABLE outbox (
	kind VARCHAR(10) NOT NULL,
	doc_id VARCHAR(64) NOT NULL,
	seq INTEGER NOT NULL,
	deleted BOOLEAN NOT NULL,
	attempts INTEGER NOT NULL,
	last_error TEXT,
	PRIMARY KEY (kind, doc_id)
);

CREATE TABLE runs (
	id SERIAL NOT NULL,
	trigger VARCHAR(40) NOT NULL,
	started_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
	finished_at TIMESTAMP WITHOUT TIME ZONE,
	status VARCHAR(20) NOT NULL,
	stats JSON,
	PRIMARY KEY (id)
);

CREATE TABLE signatures (
	article_id VARCHAR(64) NOT NULL,
	data BYTEA NOT NULL,
	at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
	PRIMARY KEY (article_id)
);

CREATE INDEX ix_signatures_at ON signatures (at);

CREATE TABLE stories (
	id VARCHAR(64) NOT NULL,
	title TEXT NOT NULL,
	text TEXT NOT NULL,
	summary TEXT NOT NULL,
	sources JSON NOT NULL,
	article_count INTEGER NOT NULL,
	outlet_count INTEGER NOT NULL,
	first_seen TIMESTAMP WITHOUT TIME ZONE NOT NULL,
	last_seen TIMESTAMP WITHOUT TIME ZONE NOT NULL,
	language VARCHAR(20),
	agency VARCHAR(40),
	PRIMARY KEY (id)
);

CREATE INDEX ix_stories_article_count ON stories (article_count);

CREATE INDEX ix_stories_last_seen ON stories (last_seen);
INSERT INTO feeds (id, name, url, language, tags, poll_interval, etag, last_modified, status, consecutive_failures,
  last_error, last_attempt_at, last_success_at, next_attempt_at, entries_seen)
  VALUES ('ledger', 'Harbor City Ledger', 'https://ledger.example/feed.xml', 'en', '["local"]', NULL, '"v1"', NULL,
  'active', 0, NULL, '2026-11-01 12:00:00', '2026-11-01 12:00:00', '2026-11-01 12:15:00', 1);
INSERT INTO entries (url, feed_id, title, summary, content, author, published, guid, discovered_at, state, attempts, last_error)
  VALUES ('https://ledger.example/a/1', 'ledger', 'Port strike', 's', NULL, NULL, '2026-11-01 11:00:00', NULL,
  '2026-11-01 12:00:00', 'done', 0, NULL);
INSERT INTO articles (id, url, feed_id, outlet, title, text, author, published, fetched_at, arrived_at, language,
  text_source, text_source_reason)
  VALUES ('a1', 'https://ledger.example/a/1', 'ledger', 'Harbor City Ledger', 'Port strike', 'CAPE MORROW (AP) — Dockworkers walked out.',
  NULL, '2026-11-01 11:00:00', '2026-11-01 12:01:00', '2026-11-01 11:00:00', 'en', 'page', NULL);
INSERT INTO signatures (article_id, data, at) VALUES ('a1', '\x00ff'::bytea, '2026-11-01 11:00:00');
INSERT INTO memberships (article_id, cluster_id, matched_article_id, jaccard, containment) VALUES ('a1', 'a1', NULL, NULL, NULL);
INSERT INTO stories (id, title, text, summary, sources, article_count, outlet_count, first_seen, last_seen, language, agency)
  VALUES ('a1', 'Port strike', 'CAPE MORROW (AP) — Dockworkers walked out.', 'Dockworkers walked out.',
  '[{"article_id": "a1", "outlet": "Harbor City Ledger", "url": "https://ledger.example/a/1", "title": "Port strike", "published": null}]',
  1, 1, '2026-11-01 11:00:00', '2026-11-01 11:00:00', 'en', NULL);
INSERT INTO outbox (kind, doc_id, seq, deleted, attempts, last_error) VALUES ('story', 'a1', 1, FALSE, 0, NULL);
INSERT INTO runs (trigger, started_at, finished_at, status, stats) VALUES ('cli', '2026-11-01 12:00:00', '2026-11-01 12:02:00', 'ok', '{}');
