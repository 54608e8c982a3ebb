"""Run as an unprivileged user (test_rootless.py): the policy file at argv[1] without its
resources (an unprivileged user gets no cgroup here), the probe inside, one run."""

from __future__ import annotations

import dataclasses
import sys

import stockade
from stockade.policy.loader import load_policy
from stockade.policy.model import Resources

policy = load_policy(sys.argv[1])
policy = dataclasses.replace(policy, resources=Resources(), digest=policy.digest + "-nores")
result = stockade.run(sys.argv[3:], policy=policy, binds=[sys.argv[2]])
sys.exit(result.exit_code)
