"""What every eval and on-policy round runs: prompt sources, generation from a replica with the engine, scoring (a
user scorer or a reward model), the request check, per-host files, and one routine that runs a rollout on every
rank. Nothing here knows what an eval summary or a training pair is (evals/, onpolicy/)."""
