-- The course views' indexes on module_progress and lesson_progress (005) held `status`, and a
-- learner's update of those rows changes it more often than not (not-started, in-progress,
-- completed): an update that changes an indexed column cannot be HOT, so each one wrote a new
-- entry into every index of the table. On bench/sink_rows.py no lesson_progress update was
-- HOT, and its merge took about three times as long per row as the other tables'.
-- By course and item instead: the funnel (api/course_queries.py _MODULES and _ITEMS, the
-- module_funnel view) reads a course's rows through it and checks status on the heap page.
-- EXPLAIN of both on the benchmark's data set: docs/analytics.md#indexes.
drop index if exists module_progress_course_status_idx;
drop index if exists lesson_progress_course_status_idx;
create index module_progress_course_module_idx on module_progress (course_id, module_id);
create index lesson_progress_course_lesson_idx on lesson_progress (course_id, lesson_id);
