-- Catalog rows from CatalogSnapshot messages: the learning paths table, and soft deletion.
--
-- A deleted catalog entry stays as a row with `deleted = true` and the deletion's
-- `updated_at` (a tombstone), so that an older definition arriving after the deletion loses
-- to it under the sink's newer-`updated_at`-wins rule instead of bringing the entry back.
-- The catalog listings leave deleted rows out; earned achievements still show the name and
-- points of their achievement's last definition (sinks/postgres.py).
--
-- The per-learner endpoints need no new index: 001 already leads with the columns they
-- filter on (quiz_attempts (user_id, course_id, quiz_id, ...), quiz_question_responses
-- (quiz_attempt_id, ...), assignment_submissions (user_id, course_id, ...),
-- learning_path_progress (user_id, ...), user_competencies (user_id, ...),
-- competency_evidence (user_competency_id), user_achievements (user_id, ...)).

alter table competencies add column deleted boolean not null default false;
alter table achievements add column deleted boolean not null default false;

-- Not a seed model: the seed has LearningPathProgress but no table of paths
-- (progress.catalog.LearningPathRow). course_ids is the path's ordered list of courses.
create table learning_paths (
    id                    text primary key,
    title                 text not null,
    description           text not null,
    course_ids            text[] not null,
    updated_at            timestamptz not null,
    deleted               boolean not null default false,
    synced_at             timestamptz not null default now()
);
