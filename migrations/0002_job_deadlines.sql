-- 0002_job_deadlines.sql - find due deadlines without a full scan.
--
-- Reserved jobs whose lease is over and delayed jobs whose run_at has come
-- are found by state and deadline: by the shard when it sweeps after a long
-- downtime, by operators inspecting a database. Partial indexes hold only
-- the rows of their state, so ready and done jobs cost nothing here.

CREATE INDEX jobs_lease ON jobs (lease_until) WHERE state = 1;
CREATE INDEX jobs_run_at ON jobs (run_at) WHERE state = 2;
