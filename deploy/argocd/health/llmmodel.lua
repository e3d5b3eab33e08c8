-- Health of an LLMModel (llmplatform.io). Ready=True: Healthy. A serving model waits for its
-- Deployment (Ready Unknown DeploymentPending, or False DeploymentUnavailable): Progressing,
-- as Argo CD treats a rolling Deployment. A missing, empty or unmounted credential
-- (SecretNotFound, SecretKeyNotFound, SecretKeyEmpty, CredentialsNotMounted) or a spec
-- the operator rejects (InvalidSpec): Degraded.
return ready_verdict(obj, { DeploymentPending = true, DeploymentUnavailable = true })
