-- A learner's current streak (progress/models.py UserProgress): the run of consecutive active
-- days ending on the last active day, in the learner's time zone. Rows written before this
-- migration read 0 / null until the learner's next event.
alter table user_progress
    add column current_streak_days integer not null default 0,
    add column last_active_day date;
