# Everything a training config needs from mmorepa: the plugin import and the
# hook that writes a squeezed, stock-backbone checkpoint next to every
# checkpoint the Runner saves.
custom_imports = dict(imports=['mmorepa'], allow_failed_imports=False)
custom_hooks = [dict(type='DeployCheckpointHook')]
