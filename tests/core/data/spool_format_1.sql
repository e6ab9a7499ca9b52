-- A spool written by otel-bridge 0.1.0's spool format 1 (commit 8853a49) with
-- tests/core/data/make_spool_format_1.py, dumped with sqlite3's iterdump; test_spool_upgrade.py loads it.
PRAGMA user_version = 1;
BEGIN TRANSACTION;
CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    span_count INTEGER NOT NULL,
    partial INTEGER NOT NULL,
    enqueued_at REAL NOT NULL,
    attempts INTEGER NOT NULL,
    reason TEXT NOT NULL,
    dead_at REAL NOT NULL
);
INSERT INTO "dead_letters" VALUES(1,'f684e174b4d493cc06a5e795d4f5236f','{"trace_id":"f684e174b4d493cc06a5e795d4f5236f","partial":false,"spans":[{"trace_id":"f684e174b4d493cc06a5e795d4f5236f","span_id":"05bfd7dc2f3f31bb","parent_span_id":"d400282694f0a2fe","parent_is_remote":false,"name":"dead-llm","kind":"CLIENT","start_time_ns":1796384928336357858,"end_time_ns":1796384928336411006,"attributes":{"gen_ai.request.model":"fake","gen_ai.usage.input_tokens":12},"status_code":"UNSET","status_description":null,"events":[],"links":[],"resource":{"service.name":"upgrade-app","deployment.environment":"test"},"scope_name":"otel-bridge.upgrade","scope_version":"1.0"},{"trace_id":"f684e174b4d493cc06a5e795d4f5236f","span_id":"865717595213fc01","parent_span_id":"05bfd7dc2f3f31bb","parent_is_remote":false,"name":"dead-inner","kind":"INTERNAL","start_time_ns":1796384928336383906,"end_time_ns":1796384928336397051,"attributes":{},"status_code":"ERROR","status_description":"boom","events":[],"links":[],"resource":{"service.name":"upgrade-app","deployment.environment":"test"},"scope_name":"other.scope","scope_version":""},{"trace_id":"f684e174b4d493cc06a5e795d4f5236f","span_id":"d400282694f0a2fe","parent_span_id":null,"parent_is_remote":false,"name":"dead-root","kind":"SERVER","start_time_ns":1796384928336297274,"end_time_ns":1796384928336423390,"attributes":{"langchain.run.type":"chain","langchain.input":"{\"question\": \"why dead?\"}","n":3,"ratio":0.5,"ok":true,"tags":["a","b"]},"status_code":"UNSET","status_description":null,"events":[{"name":"langchain.run.event","timestamp_ns":1796384928336313876,"attributes":{"data":"payload é"}}],"links":[],"resource":{"service.name":"upgrade-app","deployment.environment":"test"},"scope_name":"otel-bridge.upgrade","scope_version":"1.0"}]}',1641,3,0,1700000010.0,1,'HTTP 400: bad request',1700000012.0);
CREATE TABLE handed_over (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (trace_id, span_id)
) WITHOUT ROWID;
INSERT INTO "handed_over" VALUES('2f45c560ab166bf2116ccb3d61abd2d8','423b53d90fbb3889',1700000010.0);
INSERT INTO "handed_over" VALUES('2f45c560ab166bf2116ccb3d61abd2d8','75fa16aee727a6ec',1700000010.0);
INSERT INTO "handed_over" VALUES('2f45c560ab166bf2116ccb3d61abd2d8','76ff0e91cbc1ae8a',1700000010.0);
INSERT INTO "handed_over" VALUES('8647ff8e29f46ed6bca1f12bbf3813b4','0790edafc26232b3',1700000010.0);
INSERT INTO "handed_over" VALUES('8647ff8e29f46ed6bca1f12bbf3813b4','09c93a23d52a0aed',1700000010.0);
INSERT INTO "handed_over" VALUES('8647ff8e29f46ed6bca1f12bbf3813b4','0fe27653cff17e4d',1700000010.0);
INSERT INTO "handed_over" VALUES('f684e174b4d493cc06a5e795d4f5236f','05bfd7dc2f3f31bb',1700000010.0);
INSERT INTO "handed_over" VALUES('f684e174b4d493cc06a5e795d4f5236f','865717595213fc01',1700000010.0);
INSERT INTO "handed_over" VALUES('f684e174b4d493cc06a5e795d4f5236f','d400282694f0a2fe',1700000010.0);
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO "meta" VALUES('destination','{"project":"upgrade"}');
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    span_count INTEGER NOT NULL,
    partial INTEGER NOT NULL,
    enqueued_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    first_attempt_at REAL,
    next_attempt_at REAL NOT NULL,
    last_error TEXT
);
INSERT INTO "outbox" VALUES(1,'8647ff8e29f46ed6bca1f12bbf3813b4','{"trace_id":"8647ff8e29f46ed6bca1f12bbf3813b4","partial":false,"spans":[{"trace_id":"8647ff8e29f46ed6bca1f12bbf3813b4","span_id":"0790edafc26232b3","parent_span_id":"09c93a23d52a0aed","parent_is_remote":false,"name":"queued-llm","kind":"CLIENT","start_time_ns":1796384928335640671,"end_time_ns":1796384928335722173,"attributes":{"gen_ai.request.model":"fake","gen_ai.usage.input_tokens":12},"status_code":"UNSET","status_description":null,"events":[],"links":[],"resource":{"service.name":"upgrade-app","deployment.environment":"test"},"scope_name":"otel-bridge.upgrade","scope_version":"1.0"},{"trace_id":"8647ff8e29f46ed6bca1f12bbf3813b4","span_id":"09c93a23d52a0aed","parent_span_id":null,"parent_is_remote":false,"name":"queued-root","kind":"SERVER","start_time_ns":1796384928335543610,"end_time_ns":1796384928335733985,"attributes":{"langchain.run.type":"chain","langchain.input":"{\"question\": \"why queued?\"}","n":3,"ratio":0.5,"ok":true,"tags":["a","b"]},"status_code":"UNSET","status_description":null,"events":[{"name":"langchain.run.event","timestamp_ns":1796384928335583825,"attributes":{"data":"payload é"}}],"links":[],"resource":{"service.name":"upgrade-app","deployment.environment":"test"},"scope_name":"otel-bridge.upgrade","scope_version":"1.0"},{"trace_id":"8647ff8e29f46ed6bca1f12bbf3813b4","span_id":"0fe27653cff17e4d","parent_span_id":"0790edafc26232b3","parent_is_remote":false,"name":"queued-inner","kind":"INTERNAL","start_time_ns":1796384928335684152,"end_time_ns":1796384928335695623,"attributes":{},"status_code":"UNSET","status_description":null,"events":[],"links":[],"resource":{"service.name":"upgrade-app","deployment.environment":"test"},"scope_name":"other.scope","scope_version":""}]}',1647,3,0,1700000010.0,0,NULL,1700000010.0,NULL);
INSERT INTO "outbox" VALUES(2,'2f45c560ab166bf2116ccb3d61abd2d8','{"trace_id":"2f45c560ab166bf2116ccb3d61abd2d8","partial":false,"spans":[{"trace_id":"2f45c560ab166bf2116ccb3d61abd2d8","span_id":"423b53d90fbb3889","parent_span_id":"75fa16aee727a6ec","parent_is_remote":false,"name":"attempted-inner","kind":"INTERNAL","start_time_ns":1796384928336076884,"end_time_ns":1796384928336086602,"attributes":{},"status_code":"UNSET","status_description":null,"events":[],"links":[],"resource":{"service.name":"upgrade-app","deployment.environment":"test"},"scope_name":"other.scope","scope_version":""},{"trace_id":"2f45c560ab166bf2116ccb3d61abd2d8","span_id":"75fa16aee727a6ec","parent_span_id":"76ff0e91cbc1ae8a","parent_is_remote":false,"name":"attempted-llm","kind":"CLIENT","start_time_ns":1796384928336040336,"end_time_ns":1796384928336103463,"attributes":{"gen_ai.request.model":"fake","gen_ai.usage.input_tokens":12},"status_code":"UNSET","status_description":null,"events":[],"links":[],"resource":{"service.name":"upgrade-app","deployment.environment":"test"},"scope_name":"otel-bridge.upgrade","scope_version":"1.0"},{"trace_id":"2f45c560ab166bf2116ccb3d61abd2d8","span_id":"76ff0e91cbc1ae8a","parent_span_id":null,"parent_is_remote":false,"name":"attempted-root","kind":"SERVER","start_time_ns":1796384928335903190,"end_time_ns":1796384928336113873,"attributes":{"langchain.run.type":"chain","langchain.input":"{\"question\": \"why attempted?\"}","n":3,"ratio":0.5,"ok":true,"tags":["a","b"]},"status_code":"UNSET","status_description":null,"events":[{"name":"langchain.run.event","timestamp_ns":1796384928335924279,"attributes":{"data":"payload é"}}],"links":[],"resource":{"service.name":"upgrade-app","deployment.environment":"test"},"scope_name":"otel-bridge.upgrade","scope_version":"1.0"}]}',1659,3,0,1700000010.0,1,1700000011.0,1700000040.0,'HTTP 503');
CREATE TABLE pending_spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (trace_id, span_id)
) WITHOUT ROWID;
INSERT INTO "pending_spans" VALUES('7c51638893a9434e8ad10c0979481979','36a33be2edecf822','{"trace_id":"7c51638893a9434e8ad10c0979481979","span_id":"36a33be2edecf822","parent_span_id":null,"parent_is_remote":false,"name":"pending-root","kind":"SERVER","start_time_ns":1796384928338108500,"end_time_ns":1796384928338215620,"attributes":{"langchain.run.type":"chain","langchain.input":"{\"question\": \"why pending?\"}","n":3,"ratio":0.5,"ok":true,"tags":["a","b"]},"status_code":"UNSET","status_description":null,"events":[{"name":"langchain.run.event","timestamp_ns":1796384928338128337,"attributes":{"data":"payload é"}}],"links":[],"resource":{"service.name":"upgrade-app","deployment.environment":"test"},"scope_name":"otel-bridge.upgrade","scope_version":"1.0"}');
INSERT INTO "pending_spans" VALUES('7c51638893a9434e8ad10c0979481979','9ea30e7a20197c05','{"trace_id":"7c51638893a9434e8ad10c0979481979","span_id":"9ea30e7a20197c05","parent_span_id":"36a33be2edecf822","parent_is_remote":false,"name":"pending-llm","kind":"CLIENT","start_time_ns":1796384928338163052,"end_time_ns":1796384928338207255,"attributes":{"gen_ai.request.model":"fake","gen_ai.usage.input_tokens":12},"status_code":"UNSET","status_description":null,"events":[],"links":[],"resource":{"service.name":"upgrade-app","deployment.environment":"test"},"scope_name":"otel-bridge.upgrade","scope_version":"1.0"}');
INSERT INTO "pending_spans" VALUES('7c51638893a9434e8ad10c0979481979','cd1eb1aed9ae0fbf','{"trace_id":"7c51638893a9434e8ad10c0979481979","span_id":"cd1eb1aed9ae0fbf","parent_span_id":"9ea30e7a20197c05","parent_is_remote":false,"name":"pending-inner","kind":"INTERNAL","start_time_ns":1796384928338189642,"end_time_ns":1796384928338195803,"attributes":{},"status_code":"UNSET","status_description":null,"events":[],"links":[],"resource":{"service.name":"upgrade-app","deployment.environment":"test"},"scope_name":"other.scope","scope_version":""}');
INSERT INTO "pending_spans" VALUES('e61e58685e641149475ce6ed59b3169a','bfce97ff82f04b74','{"trace_id":"e61e58685e641149475ce6ed59b3169a","span_id":"bfce97ff82f04b74","parent_span_id":"c83fa942e71feaea","parent_is_remote":false,"name":"rootless-inner","kind":"INTERNAL","start_time_ns":1796384928338388282,"end_time_ns":1796384928338393772,"attributes":{},"status_code":"UNSET","status_description":null,"events":[],"links":[],"resource":{"service.name":"upgrade-app","deployment.environment":"test"},"scope_name":"other.scope","scope_version":""}');
INSERT INTO "pending_spans" VALUES('e61e58685e641149475ce6ed59b3169a','c83fa942e71feaea','{"trace_id":"e61e58685e641149475ce6ed59b3169a","span_id":"c83fa942e71feaea","parent_span_id":"aa2a75d1d6caacda","parent_is_remote":false,"name":"rootless-llm","kind":"CLIENT","start_time_ns":1796384928338365730,"end_time_ns":1796384928338403621,"attributes":{"gen_ai.request.model":"fake","gen_ai.usage.input_tokens":12},"status_code":"UNSET","status_description":null,"events":[],"links":[],"resource":{"service.name":"upgrade-app","deployment.environment":"test"},"scope_name":"otel-bridge.upgrade","scope_version":"1.0"}');
CREATE TABLE pending_traces (
    trace_id TEXT PRIMARY KEY,
    first_arrival REAL NOT NULL,
    root_arrival REAL,
    span_count INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
INSERT INTO "pending_traces" VALUES('7c51638893a9434e8ad10c0979481979',1700000020.0,1700000020.0,3,1651);
INSERT INTO "pending_traces" VALUES('e61e58685e641149475ce6ed59b3169a',1700000020.0,NULL,2,979);
CREATE INDEX pending_traces_first ON pending_traces (first_arrival);
CREATE INDEX pending_traces_root ON pending_traces (root_arrival);
CREATE INDEX handed_over_at ON handed_over (at);
CREATE INDEX outbox_due ON outbox (next_attempt_at, id);
CREATE INDEX dead_letters_dead_at ON dead_letters (dead_at, id);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('outbox',3);
INSERT INTO "sqlite_sequence" VALUES('dead_letters',1);
COMMIT;
