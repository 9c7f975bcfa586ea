"""A network as data: its class, its config and its layers, so that a logged model can build
it again from a JSON file and its state_dict, in a process that never trained it.

A network class names its config dataclass in `config_class` (MLP, CNN)."""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from hw4.models.layer_choice import Impl


@dataclass(frozen=True)
class NetSpec:
    net: type[nn.Module]  # built as net(config, impl=impl)
    config: Any  # an instance of net.config_class
    impl: Impl = "torch"

    def build(self) -> nn.Module:
        return self.net(self.config, impl=self.impl)

    def to_json(self) -> dict[str, Any]:
        return {"class": f"{self.net.__module__}:{self.net.__qualname__}", "config": asdict(self.config), "impl": self.impl}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "NetSpec":
        module, name = data["class"].split(":")
        if not module.startswith("hw4.models."):
            raise ValueError(f"{data['class']!r} is not a network of hw4.models")
        net = getattr(importlib.import_module(module), name)
        return cls(net, net.config_class(**data["config"]), data.get("impl", "torch"))
