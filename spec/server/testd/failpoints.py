"""The `failCommand` failpoint (configureFailPoint), as mongod's enableTestCommands has it.

mode: "alwaysOn" | "off" | {times: n} | {skip: n} (| {activationProbability: p}).
data: failCommands, errorCode, errorLabels, closeConnection, writeConcernError,
blockConnection + blockTimeMS, appName, failInternalCommands (ignored).

FailPoints.check() decides (under the cluster lock) whether a command is hit and returns
the data to apply; the dispatcher then blocks, closes, fails or attaches a
writeConcernError.
"""

import random

from .errors import CommandError


class FailPoints(object):
    def __init__(self):
        self.points = {}   # name -> {"mode": ..., "data": ..., "times": n|None, "skip": n}

    def clear(self):
        self.points = {}

    def configure(self, cmd):
        name = cmd.get("configureFailPoint")
        if not isinstance(name, str):
            raise CommandError(2, "configureFailPoint requires a failpoint name")
        mode = cmd.get("mode")
        data = cmd.get("data") or {}
        old = self.points.get(name)
        count = old["hits"] if old else 0
        if mode == "off":
            self.points.pop(name, None)
            return count
        entry = {"data": data, "times": None, "skip": 0, "prob": None, "hits": 0}
        if mode == "alwaysOn":
            pass
        elif isinstance(mode, dict):
            if "times" in mode:
                entry["times"] = int(mode["times"])
                if entry["times"] <= 0:
                    self.points.pop(name, None)
                    return count
            elif "skip" in mode:
                entry["skip"] = int(mode["skip"])
            elif "activationProbability" in mode:
                entry["prob"] = float(mode["activationProbability"])
            else:
                raise CommandError(2, "invalid failpoint mode %r" % (mode,))
        else:
            raise CommandError(2, "invalid failpoint mode %r" % (mode,))
        if name == "failCommand":
            fc = data.get("failCommands")
            if not isinstance(fc, list):
                raise CommandError(2, "failCommand requires data.failCommands (an array)")
        self.points[name] = entry
        return count

    def check(self, name, app_name):
        """Return the failCommand data if `name` is hit now, else None."""
        entry = self.points.get("failCommand")
        if entry is None:
            return None
        data = entry["data"]
        if name not in data.get("failCommands", []):
            return None
        want_app = data.get("appName")
        if want_app is not None and want_app != app_name:
            return None
        if entry["skip"] > 0:
            entry["skip"] -= 1
            return None
        if entry["prob"] is not None and random.random() >= entry["prob"]:
            return None
        entry["hits"] += 1
        if entry["times"] is not None:
            entry["times"] -= 1
            if entry["times"] <= 0:
                self.points.pop("failCommand", None)
        return data
