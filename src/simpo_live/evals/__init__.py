"""The periodic inference eval on top of a rollout (rollout/): its prompt sources, health statistics, win rates
against the baseline, and the summary the leader logs."""
