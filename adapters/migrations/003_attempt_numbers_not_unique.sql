-- Attempt numbers are derived (a learner's attempts at a quiz ranked by start time), so an
-- earlier attempt arriving late renumbers the others; the sink writes rows one by one
-- inside its transaction, and a unique index on the number refused the intermediate state
-- and stopped the sink. The row's id stays the key; the number is only looked up by.
drop index if exists quiz_attempts_user_quiz_attempt_key;
create index if not exists quiz_attempts_user_quiz_attempt_idx
    on quiz_attempts (user_id, course_id, quiz_id, attempt_number);
