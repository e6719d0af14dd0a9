-- Every snapshot rewrites its learner's rows at a new version, so these tables are mostly
-- updated, not inserted into. With full pages (fillfactor 100) each new row version lands
-- on another page, and every index of the table gets a new entry for it; with room left on
-- the page, PostgreSQL keeps the new version there as a HOT update and touches no index
-- (none of the columns a learner's update changes is indexed, but status in a few tables).
-- On one mid-run batch of bench/sink_rows.py, the module_progress merge went from 38 ms to
-- 12 ms, and the sink's PostgreSQL CPU for the whole run from 1.7 s to 1.15 s.
-- Applies to pages written from now on; an existing table gets there as its rows turn over.
alter table user_progress set (fillfactor = 70);
alter table course_progress set (fillfactor = 70);
alter table module_progress set (fillfactor = 70);
alter table lesson_progress set (fillfactor = 70);
alter table quiz_attempts set (fillfactor = 70);
alter table quiz_question_responses set (fillfactor = 70);
alter table assignment_submissions set (fillfactor = 70);
alter table learning_path_progress set (fillfactor = 70);
alter table user_competencies set (fillfactor = 70);
alter table competency_evidence set (fillfactor = 70);
alter table user_achievements set (fillfactor = 70);
