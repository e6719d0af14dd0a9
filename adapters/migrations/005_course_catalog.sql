-- The course catalog: courses, their modules and their items, from CourseSnapshot messages
-- (progress/course_catalog.py), which the worker publishes whenever it applies a
-- CourseUpdated. Not per learner, so no user_id and no learner version.
--
-- Versioning: a course has two clocks, as the worker merges it (progress.facts.
-- merge_course_update): its title (title_updated_at) and its structure
-- (structure_updated_at, then structure_event_id on a tie). The sink writes each part only if
-- it is newer than the stored one, so a replayed or late snapshot changes nothing. Modules
-- and items are the course's current structure as a set: written with the structure and
-- replaced as a whole when a newer structure wins, so a module or item dropped from the
-- course disappears (sinks/course_catalog.py).

create table courses (
    id                    text primary key,
    title                 text not null,
    title_updated_at      timestamptz,
    -- Null for a course known by its title only: it has no modules or items yet.
    structure_updated_at  timestamptz,
    structure_event_id    text not null,
    total_modules         integer not null,
    total_items           integer not null,
    total_points          bigint not null,
    synced_at             timestamptz not null default now()
);

create table course_modules (
    course_id             text not null,
    module_id             text not null,
    title                 text not null,
    -- 1-based, in the course's order.
    position              integer not null,
    total_items           integer not null,
    total_points          bigint not null,
    synced_at             timestamptz not null default now(),
    primary key (course_id, module_id)
);

-- Item ids are unique per kind within a course (progress.structure.CourseStructure).
-- position: 1-based within the module, its lessons first, then its quizzes, then its
-- assignments (the structure lists each kind apart); course_position: the same order
-- across the whole course, modules in their order.
-- completion: the rule that makes the item done: 'completion-event' (a lesson: a
-- LessonCompleted), 'passed' or 'submitted' (a quiz), 'submitted' or 'graded' (an
-- assignment); pass_mark (quizzes), max_score and pass_ratio (assignments) complete it.
create table course_items (
    course_id             text not null,
    kind                  text not null,
    item_id               text not null,
    module_id             text not null,
    title                 text not null,
    position              integer not null,
    course_position       integer not null,
    points                bigint not null,
    completion            text not null,
    pass_mark             double precision,
    max_score             double precision,
    pass_ratio            double precision,
    synced_at             timestamptz not null default now(),
    primary key (course_id, kind, item_id)
);
create index course_items_course_position_idx on course_items (course_id, course_position);

-- The course views (api/course_queries.py) read a course's learners, never a learner's
-- courses. Indexed by columns a learner's update never changes, or rarely (status): an index
-- on last_activity_at or percent_complete would change with almost every update and end the
-- HOT updates migration 004 made room for; the roster sorts a course's rows instead.
create index course_progress_course_user_idx on course_progress (course_id, user_id);
create index module_progress_course_status_idx
    on module_progress (course_id, status, module_id);
create index lesson_progress_course_status_idx
    on lesson_progress (course_id, status, lesson_id);
create index quiz_attempts_course_quiz_idx on quiz_attempts (course_id, quiz_id);
create index assignment_submissions_course_assignment_idx
    on assignment_submissions (course_id, assignment_id);
