-- The 13 tables of the seed, one per model in progress/models.py, same column names.
--
-- This is a projection of the worker's tables: every row can be rebuilt by replaying Kafka,
-- so the sink, not the database, decides which version wins (see sinks/postgres.py).
-- Status and type columns are plain text without CHECK constraints on purpose: the pydantic
-- models validate them at the boundary, and a CHECK here would turn a model that gains a value
-- into a sink that stops. Per-learner tables carry `version`, the learner's state version that
-- derived the row; `synced_at` is when the sink last wrote the row, for operators only.
-- Counters are `integer`; accumulating quantities (seconds, positions, points) are `bigint`.

create table user_progress (
    id                    text primary key,
    user_id               text not null,
    version               bigint not null,
    total_courses         integer not null,
    completed_courses     integer not null,
    in_progress_courses   integer not null,
    total_lessons         integer not null,
    completed_lessons     integer not null,
    total_quizzes         integer not null,
    completed_quizzes     integer not null,
    total_assignments     integer not null,
    completed_assignments integer not null,
    total_points          bigint not null,
    last_activity_at      timestamptz,
    created_at            timestamptz not null,
    updated_at            timestamptz not null,
    synced_at             timestamptz not null default now()
);
create unique index user_progress_user_key on user_progress (user_id);

create table course_progress (
    id                    text primary key,
    user_id               text not null,
    version               bigint not null,
    course_id             text not null,
    enrollment_id         text not null,
    status                text not null,
    percent_complete      double precision not null,
    total_modules         integer not null,
    completed_modules     integer not null,
    total_lessons         integer not null,
    completed_lessons     integer not null,
    total_quizzes         integer not null,
    completed_quizzes     integer not null,
    total_assignments     integer not null,
    completed_assignments integer not null,
    total_points          bigint not null,
    started_at            timestamptz,
    completed_at          timestamptz,
    last_activity_at      timestamptz,
    created_at            timestamptz not null,
    updated_at            timestamptz not null,
    synced_at             timestamptz not null default now()
);
create unique index course_progress_user_course_key on course_progress (user_id, course_id);
-- GET /users/{user_id}/courses?status=...
create index course_progress_user_status_idx on course_progress (user_id, status, course_id);
-- Analysts: who is in a course, and how far.
create index course_progress_course_status_idx on course_progress (course_id, status);

create table module_progress (
    id                    text primary key,
    user_id               text not null,
    version               bigint not null,
    course_id             text not null,
    module_id             text not null,
    status                text not null,
    percent_complete      double precision not null,
    total_lessons         integer not null,
    completed_lessons     integer not null,
    total_quizzes         integer not null,
    completed_quizzes     integer not null,
    total_assignments     integer not null,
    completed_assignments integer not null,
    started_at            timestamptz,
    completed_at          timestamptz,
    last_activity_at      timestamptz,
    created_at            timestamptz not null,
    updated_at            timestamptz not null,
    synced_at             timestamptz not null default now()
);
-- Also serves GET /users/{user_id}/courses/{course_id} (modules of a course, by prefix).
create unique index module_progress_user_course_module_key
    on module_progress (user_id, course_id, module_id);

create table lesson_progress (
    id                    text primary key,
    user_id               text not null,
    version               bigint not null,
    course_id             text not null,
    module_id             text not null,
    lesson_id             text not null,
    status                text not null,
    percent_complete      double precision not null,
    time_spent            bigint not null,
    last_position         bigint not null,
    completion_criteria   text not null,
    started_at            timestamptz,
    completed_at          timestamptz,
    last_activity_at      timestamptz,
    created_at            timestamptz not null,
    updated_at            timestamptz not null,
    synced_at             timestamptz not null default now()
);
-- A lesson's module can change with the course structure, so the key leaves module_id out.
create unique index lesson_progress_user_course_lesson_key
    on lesson_progress (user_id, course_id, lesson_id);
-- GET .../modules/{module_id}: the lessons of one module.
create index lesson_progress_user_course_module_idx
    on lesson_progress (user_id, course_id, module_id, lesson_id);

create table quiz_attempts (
    id                    text primary key,
    user_id               text not null,
    version               bigint not null,
    course_id             text not null,
    module_id             text not null,
    lesson_id             text not null,
    quiz_id               text not null,
    status                text not null,
    score                 double precision not null,
    total_questions       integer not null,
    correct_answers       integer not null,
    incorrect_answers     integer not null,
    unanswered_questions  integer not null,
    time_spent            bigint not null,
    passed                boolean not null,
    attempt_number        integer not null,
    started_at            timestamptz,
    completed_at          timestamptz,
    created_at            timestamptz not null,
    updated_at            timestamptz not null,
    synced_at             timestamptz not null default now()
);
create unique index quiz_attempts_user_quiz_attempt_key
    on quiz_attempts (user_id, course_id, quiz_id, attempt_number);

create table quiz_question_responses (
    id                    text primary key,
    user_id               text not null,
    version               bigint not null,
    quiz_attempt_id       text not null,
    question_id           text not null,
    selected_options      text[] not null,
    text_response         text not null,
    correct               boolean not null,
    score                 double precision not null,
    time_spent            bigint not null,
    created_at            timestamptz not null,
    updated_at            timestamptz not null,
    synced_at             timestamptz not null default now()
);
create unique index quiz_question_responses_attempt_question_key
    on quiz_question_responses (quiz_attempt_id, question_id);
create index quiz_question_responses_user_idx on quiz_question_responses (user_id);

create table assignment_submissions (
    id                    text primary key,
    user_id               text not null,
    version               bigint not null,
    course_id             text not null,
    module_id             text not null,
    lesson_id             text not null,
    assignment_id         text not null,
    status                text not null,
    submission_type       text not null,
    text_content          text not null,
    file_url              text not null,
    link_url              text not null,
    score                 double precision,
    max_score             double precision not null,
    feedback              text not null,
    graded_by             text not null,
    submitted_at          timestamptz,
    graded_at             timestamptz,
    created_at            timestamptz not null,
    updated_at            timestamptz not null,
    synced_at             timestamptz not null default now()
);
-- Not unique: the seed has no attempt number, and a learner may resubmit an assignment.
create index assignment_submissions_user_course_assignment_idx
    on assignment_submissions (user_id, course_id, assignment_id);

create table learning_path_progress (
    id                    text primary key,
    user_id               text not null,
    version               bigint not null,
    learning_path_id      text not null,
    status                text not null,
    percent_complete      double precision not null,
    total_courses         integer not null,
    completed_courses     integer not null,
    current_course_id     text not null,
    started_at            timestamptz,
    completed_at          timestamptz,
    last_activity_at      timestamptz,
    created_at            timestamptz not null,
    updated_at            timestamptz not null,
    synced_at             timestamptz not null default now()
);
create unique index learning_path_progress_user_path_key
    on learning_path_progress (user_id, learning_path_id);

-- Catalog: not per learner, so no user_id and no version; newer updated_at wins.
create table competencies (
    id                    text primary key,
    name                  text not null,
    description           text not null,
    category              text not null,
    level                 text not null,
    created_at            timestamptz not null,
    updated_at            timestamptz not null,
    synced_at             timestamptz not null default now()
);

-- The model's `evidence` list is not a column: its rows live in competency_evidence.
create table user_competencies (
    id                    text primary key,
    user_id               text not null,
    version               bigint not null,
    competency_id         text not null,
    level                 integer not null,
    status                text not null,
    acquired_at           timestamptz,
    created_at            timestamptz not null,
    updated_at            timestamptz not null,
    synced_at             timestamptz not null default now()
);
create unique index user_competencies_user_competency_key
    on user_competencies (user_id, competency_id);
create index user_competencies_competency_idx on user_competencies (competency_id, status);

create table competency_evidence (
    id                    text primary key,
    user_id               text not null,
    version               bigint not null,
    user_competency_id    text not null,
    type                  text not null,
    reference_id          text not null,
    description           text not null,
    url                   text not null,
    created_at            timestamptz not null,
    updated_at            timestamptz not null,
    synced_at             timestamptz not null default now()
);
-- No foreign key to user_competencies: both arrive in one snapshot, but a projection
-- should not reject a row over the order in which it is written.
create index competency_evidence_user_competency_idx
    on competency_evidence (user_competency_id);
create index competency_evidence_user_idx on competency_evidence (user_id);

-- Catalog: not per learner, so no user_id and no version; newer updated_at wins.
create table achievements (
    id                    text primary key,
    name                  text not null,
    description           text not null,
    image_url             text not null,
    criteria              text not null,
    points                integer not null,
    category              text not null,
    created_at            timestamptz not null,
    updated_at            timestamptz not null,
    synced_at             timestamptz not null default now()
);

create table user_achievements (
    id                    text primary key,
    user_id               text not null,
    version               bigint not null,
    achievement_id        text not null,
    earned_at             timestamptz not null,
    created_at            timestamptz not null,
    updated_at            timestamptz not null,
    synced_at             timestamptz not null default now()
);
create unique index user_achievements_user_achievement_key
    on user_achievements (user_id, achievement_id);
create index user_achievements_achievement_idx on user_achievements (achievement_id);
