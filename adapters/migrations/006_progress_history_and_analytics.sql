-- The daily history of every learner-course, and the analysts' views (docs/analytics.md).
--
-- course_progress keeps one row per learner and course, overwritten by each newer version.
-- course_progress_daily keeps, per learner, course and day, the last value that day had:
-- the sink writes it in the same transaction as every course_progress upsert
-- (sinks/history.py), the higher learner version winning within a day, and never deletes
-- it when course_progress is overwritten. Only an erasure removes a learner's history.
-- day: the UTC date of the row's updated_at, an event time (the later of its last activity,
-- its enrolment and its course's structure), so a replay writes the same history.
create table course_progress_daily (
    user_id               text not null,
    course_id             text not null,
    day                   date not null,
    version               bigint not null,
    status                text not null,
    percent_complete      double precision not null,
    completed_items       integer not null,
    total_items           integer not null,
    last_activity_at      timestamptz,
    synced_at             timestamptz not null default now(),
    primary key (user_id, course_id, day)
);
-- Trends of a course, and daily active learners: by course and day.
create index course_progress_daily_course_day_idx on course_progress_daily (course_id, day);

-- Completion rate by course: enrolled learners (a course_progress row each) by status.
create view course_completion_rates as
select c.id as course_id,
       c.title,
       count(p.user_id) as enrolled,
       count(*) filter (where p.status = 'not-started') as not_started,
       count(*) filter (where p.status = 'in-progress') as in_progress,
       count(*) filter (where p.status = 'completed') as completed,
       coalesce(round((count(*) filter (where p.status = 'completed'))::numeric
                      / nullif(count(p.user_id), 0), 4), 0) as completion_rate
from courses c
left join course_progress p on p.course_id = c.id
group by c.id, c.title;

-- The funnel: per module in course order, how many enrolled learners completed it, and how
-- many fewer than completed the module before it (drop_off; the first module's is counted
-- from the enrolled learners).
create view module_funnel as
with enrolled as (
    select course_id, count(*) as enrolled from course_progress group by course_id
), done as (
    select course_id, module_id, count(*) as completed
    from module_progress where status = 'completed' group by course_id, module_id
)
select m.course_id,
       m.module_id,
       m.title,
       m.position,
       coalesce(e.enrolled, 0) as enrolled,
       coalesce(d.completed, 0) as completed,
       coalesce(round(coalesce(d.completed, 0)::numeric / nullif(e.enrolled, 0), 4), 0)
           as completion_rate,
       lag(coalesce(d.completed, 0), 1, coalesce(e.enrolled, 0))
           over (partition by m.course_id order by m.position) - coalesce(d.completed, 0)
           as drop_off
from course_modules m
left join enrolled e on e.course_id = m.course_id
left join done d on d.course_id = m.course_id and d.module_id = m.module_id;

-- Time to complete: from a learner's first activity in the course to its completion.
create view course_time_to_complete as
select course_id,
       count(*) as completed,
       percentile_cont(0.5) within group (order by extract(epoch from completed_at - started_at))
           as median_seconds,
       percentile_cont(0.9) within group (order by extract(epoch from completed_at - started_at))
           as p90_seconds,
       avg(extract(epoch from completed_at - started_at)) as mean_seconds
from course_progress
where status = 'completed' and completed_at is not null and started_at is not null
group by course_id;

-- Quiz pass rates: submitted attempts (status 'completed') of each quiz of the catalog;
-- learners: those with a submitted attempt; passed: those with a passed one.
create view quiz_pass_rates as
select i.course_id,
       i.item_id as quiz_id,
       i.title,
       count(distinct a.user_id) as learners,
       count(a.id) as attempts,
       count(distinct a.user_id) filter (where a.passed) as passed,
       coalesce(round((count(distinct a.user_id) filter (where a.passed))::numeric
                      / nullif(count(distinct a.user_id), 0), 4), 0) as pass_rate,
       round(avg(a.score)::numeric, 2) as mean_score
from course_items i
left join quiz_attempts a
       on a.course_id = i.course_id and a.quiz_id = i.item_id and a.status = 'completed'
where i.kind = 'quiz'
group by i.course_id, i.item_id, i.title;

-- Daily active learners: learners with activity on that day (UTC), in any course and per
-- course, from the history (so only days since the history was kept).
create view daily_active_learners as
select day, count(distinct user_id) as learners
from course_progress_daily
where (last_activity_at at time zone 'UTC')::date = day
group by day;

create view daily_active_learners_by_course as
select course_id, day, count(*) as learners
from course_progress_daily
where (last_activity_at at time zone 'UTC')::date = day
group by course_id, day;
