-- Health of a RoutingPolicy (llmplatform.io). Ready=True (AllModelsReady): Healthy. Every
-- Ready=False reason names something a person must fix (MissingModels, UnusableModels,
-- DefaultConflict, InvalidSpec): Degraded, with the operator's message naming the models.
return ready_verdict(obj, {})
