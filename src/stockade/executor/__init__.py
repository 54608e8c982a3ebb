"""The compiled executor's contract: the plan it carries out (plan_json) and, in C, the
set-up steps (steps/). docs/EXECUTOR.md documents both."""
