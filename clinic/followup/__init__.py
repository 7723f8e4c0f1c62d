"""Post-procedure follow-up: the plan a procedure creates, check-ins, outcomes, staff tasks."""
