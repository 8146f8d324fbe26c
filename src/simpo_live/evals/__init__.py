"""The periodic inference eval and `simpo-live sample`: prompt sources, the pre-flight fit check, one host's
generation (in process or in a subprocess), scoring (a user scorer or a reward model), health statistics, win
rates against the baseline, and the summary the leader logs. Host files live in `simpo_live.host_files`."""
