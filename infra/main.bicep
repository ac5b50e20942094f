// One environment of the 10KC calendar integration: a Python 3.11 Function App on the Flex
// Consumption plan, its storage account (the service's tables and queue, the host's own blobs, the
// deployment package), a Key Vault (RBAC, soft delete, purge protection), Application Insights on a
// Log Analytics workspace, and one user-assigned managed identity holding only the roles the code
// needs. No keys anywhere: every connection is identity-based.
//
// Deploy with infra/deploy.sh (see the README, "Deploy"). Shapes follow Microsoft's Flex Consumption
// samples (Azure-Samples/azure-functions-flex-consumption-samples, IaC/bicep, and
// Azure-Samples/functions-quickstart-python-http-azd, infra/).
targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------
// Names and placement
// ---------------------------------------------------------------------------------------------

@description('Short name of the service, in resource names: lower-case letters, digits and hyphens.')
@minLength(2)
@maxLength(12)
param serviceName string = 'tenkc-cal'

@description('Environment name (dev, staging, prod, ...): lower-case letters and digits; in resource names and tags.')
@minLength(2)
@maxLength(8)
param environmentName string

@description('Azure region of every resource; it must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
param location string = resourceGroup().location

@description('Name of the Function App (also its host name, <name>.azurewebsites.net). Empty: func-<service>-<env>-<suffix>.')
@maxLength(60)
param functionAppName string = ''

@description('Name of the Key Vault (3-24 characters). Empty: kv<service><env><suffix>. A deleted vault keeps its name for the retention period (purge protection), so recover it (az keyvault recover) rather than renaming.')
@maxLength(24)
param keyVaultName string = ''

@description('Tags added to every resource, besides service and environment.')
param tags object = {}

// ---------------------------------------------------------------------------------------------
// The service's settings (README, "Settings"): each becomes the app setting of the same name
// ---------------------------------------------------------------------------------------------

@description('PUBLIC_BASE_URL: the public origin of the service. Empty: https://<the Function App default host name>. The app registration redirect URI is this + /api/consent/callback.')
param publicBaseUrl string = ''

@description('ALLOWED_RETURN_ORIGINS: comma-separated origins of the 10KC web app that a consent returnUrl may point to, e.g. https://app.10kc.example.')
@minLength(8)
param allowedReturnOrigins string

@description('APP_CLIENT_ID: the Application (client) ID of the multi-tenant app registration of this environment.')
@minLength(36)
@maxLength(36)
param appClientId string

@description('HOME_TENANT_ID: 10KC\'s own Microsoft Entra tenant, where the API\'s app registration and the web app live; callers\' tokens must be issued there. Default: the tenant of this deployment.')
@minLength(36)
@maxLength(36)
param homeTenantId string = tenant().tenantId

@description('API_AUDIENCE: the Application (client) ID of the app registration that exposes this service\'s API (v2 access tokens, app role Calendar.Integration; README, Deploy, step 6).')
@minLength(36)
@maxLength(36)
param apiAudience string

@description('ALLOWED_CALLER_APP_IDS: comma-separated Application (client) IDs of the apps that may call the API (the 10KC web app), each also assigned the app role Calendar.Integration.')
@minLength(36)
param allowedCallerAppIds string

@description('APP_CREDENTIAL_TYPE: how the app registration proves itself: certificate (recommended for production) or secret.')
@allowed([
  'secret'
  'certificate'
])
param appCredentialType string = 'secret'

@description('APP_SECRET_NAME: Key Vault secret holding the client secret (APP_CREDENTIAL_TYPE=secret).')
param appSecretName string = 'app-client-secret'

@description('APP_CERTIFICATE_NAME: Key Vault certificate (PEM content type) whose secret holds the key and certificate (APP_CREDENTIAL_TYPE=certificate).')
param appCertificateName string = 'app-client-certificate'

@description('IDENTITY_AUTHORITY_HOST: the identity platform host; national clouds use their own.')
param identityAuthorityHost string = 'https://login.microsoftonline.com'

@description('GRAPH_BASE_URL: the Microsoft Graph endpoint.')
param graphBaseUrl string = 'https://graph.microsoft.com/v1.0'

@description('GRAPH_RESOURCE: the resource app-only tokens are requested for.')
param graphResource string = 'https://graph.microsoft.com'

@description('STORAGE_TABLE_PREFIX: prefix of the table names (1-40 letters and digits).')
@minLength(1)
@maxLength(40)
param storageTablePrefix string = 'tenkc'

@description('JOBS_QUEUE_NAME: the background jobs queue (3-57 of a-z 0-9 -); the host adds <name>-poison.')
@minLength(3)
@maxLength(57)
param jobsQueueName string = 'tenkc-jobs'

@description('TOKEN_REFRESH_SCHEDULE: NCRONTAB (UTC) of the token-refresh / consent-health timer; the host reads it too.')
param tokenRefreshSchedule string = '0 0 */6 * * *'

@description('BOOKING_RECONCILE_SCHEDULE: NCRONTAB (UTC) of the timer that finishes bookings left creating or uncertain.')
param bookingReconcileSchedule string = '0 */2 * * * *'

@description('REFRESH_JOBS_PER_SECOND: pace of token-refresh jobs; each writes one Key Vault secret version (a vault takes about 300 writes per 10 s).')
@minValue(1)
@maxValue(28)
param refreshJobsPerSecond int = 25

@description('RECONCILE_HOURS: every upcoming booking is re-read from Outlook at least this often (hours; notifications can be lost).')
param reconcileHours string = '6'

@description('BOOKING_RETENTION_DAYS: a booking row is deleted this many days after its meeting ended (at least 30: idempotency keys live 30 days).')
@minValue(30)
@maxValue(3650)
param bookingRetentionDays int = 90

@description('WEBHOOK_URL: where every change is POSTed, signed (https); empty: no webhooks.')
param webhookUrl string = ''

@description('WEBHOOK_SECRET_NAME: the Key Vault secret whose enabled versions sign the webhooks.')
param webhookSecretName string = 'webhook-signing-secret'

@description('HTTP_TIMEOUT_SECONDS: timeout of one call to Graph or the identity platform.')
@minValue(1)
@maxValue(120)
param httpTimeoutSeconds int = 10

@description('GRAPH_WRITE_MARGIN_SECONDS: how long after the client gave up Graph may still act on a write; booking leases and key holds cover it.')
@minValue(1)
@maxValue(600)
param graphWriteMarginSeconds int = 60

@description('LOG_LEVEL of the service.')
@allowed([
  'DEBUG'
  'INFO'
  'WARNING'
  'ERROR'
])
param logLevel string = 'INFO'

@description('APP_VERSION reported by GET /api/health (deploy.sh passes the git description of the deployed commit).')
param appVersion string = '0.1.0'

// ---------------------------------------------------------------------------------------------
// Sizes and retention
// ---------------------------------------------------------------------------------------------

@description('Flex Consumption: the most instances the app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Flex Consumption: memory of one instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Flex Consumption: always-ready instances for the HTTP functions (0 scales to zero; 1 or more removes cold starts and is billed while idle).')
@minValue(0)
@maxValue(20)
param alwaysReadyHttpInstances int = 0

@description('Redundancy of the storage account: zone-redundant by default; Standard_LRS for a region without zones or a throwaway environment.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
])
param storageSku string = 'Standard_ZRS'

@description('Days Log Analytics keeps logs.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Days a deleted Key Vault secret (or the vault) stays recoverable; fixed when the vault is created.')
@minValue(7)
@maxValue(90)
param keyVaultRetentionDays int = 90

@description('E-mail address of the operators (a shared mailbox or list, ideally): every alert rule sends to it through one action group (README, "Operations").')
@minLength(3)
param alertEmail string

@description('Object ID of the operators (a group, ideally) who write the app credential into the vault: granted Key Vault Secrets Officer and Certificates Officer on it. Empty: nobody.')
param operatorPrincipalId string = ''

@description('Kind of operatorPrincipalId.')
@allowed([
  'Group'
  'User'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'Group'

// ---------------------------------------------------------------------------------------------
// Derived names
// ---------------------------------------------------------------------------------------------

var suffix = take(uniqueString(subscription().id, resourceGroup().id, serviceName, environmentName), 6)
var baseName = '${serviceName}-${environmentName}'
// Storage account and vault names allow no hyphens (vault names no doubled ones) and 24 characters.
var compactName = take(toLower(replace(baseName, '-', '')), 16)
var names = {
  functionApp: empty(functionAppName) ? 'func-${baseName}-${suffix}' : functionAppName
  plan: 'plan-${baseName}-${suffix}'
  identity: 'id-${baseName}-${suffix}'
  storage: 'st${compactName}${suffix}'
  keyVault: empty(keyVaultName) ? 'kv${compactName}${suffix}' : keyVaultName
  workspace: 'log-${baseName}-${suffix}'
  appInsights: 'appi-${baseName}-${suffix}'
}
// Flex Consumption keeps the deployed package in this blob container of the app's storage account.
var deploymentContainerName = 'app-package'
var allTags = union(tags, {
  service: serviceName
  environment: environmentName
})

// ---------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------

// User-assigned, so its roles exist before the Function App starts (no first-start race) and
// survive re-creating the app. The code finds it through AZURE_CLIENT_ID (DefaultAzureCredential),
// the host through <connection>__credential / __clientId.
resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: names.identity
  location: location
  tags: allTags
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    workspaceName: names.workspace
    appInsightsName: names.appInsights
    location: location
    tags: allTags
    retentionDays: logRetentionDays
  }
}

// What ops sees: alert rules e-mailing the operators, and the operations workbook, both reading
// the workspace behind Application Insights (README, "Operations").
module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    workspaceId: monitoring.outputs.workspaceId
    location: location
    tags: allTags
    baseName: baseName
    alertEmail: alertEmail
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  params: {
    workspaceId: monitoring.outputs.workspaceId
    location: location
    tags: allTags
    displayName: '10KC calendar integration: operations (${environmentName})'
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: names.storage
    location: location
    tags: allTags
    skuName: storageSku
    deploymentContainerName: deploymentContainerName
    jobsQueueName: jobsQueueName
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  params: {
    name: names.keyVault
    location: location
    tags: allTags
    retentionDays: keyVaultRetentionDays
    workspaceId: monitoring.outputs.workspaceId
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  params: {
    principalId: identity.properties.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    name: names.functionApp
    planName: names.plan
    location: location
    tags: allTags
    identityId: identity.id
    deploymentContainerUrl: '${storage.outputs.blobEndpoint}${deploymentContainerName}'
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    alwaysReadyHttpInstances: alwaysReadyHttpInstances
  }
  // The app starts with its roles already granted.
  dependsOn: [
    rbac
  ]
}

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: names.functionApp
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: names.appInsights
}

var effectivePublicBaseUrl = empty(publicBaseUrl) ? 'https://${functionApp.outputs.defaultHostName}' : publicBaseUrl

// Every setting the service reads (shared/settings.py) and the host's identity-based connections.
// On Flex Consumption FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION are not allowed (the
// runtime is functionAppConfig.runtime) and WEBSITE_TIME_ZONE is not supported (timers run in UTC).
// No connection string holds a key: SERVICE_STORAGE and AzureWebJobsStorage are never set as such.
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: {
    // The host's own storage (keys, timer leases) through the managed identity.
    AzureWebJobsStorage__accountName: storage.outputs.name
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identity.properties.clientId
    // Telemetry authenticated with Entra ID (local auth is off on the Application Insights resource);
    // the form of Azure-Samples/fastapi-on-azure-functions, infra/app/api.bicep.
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
    // Log lines keep their request, tenant and invocation ids as dimensions only through OpenTelemetry
    // (shared/logs.py): the worker starts azure-monitor-opentelemetry with this; host.json's telemetryMode
    // stops the host writing the lines twice. Both send with the identity above.
    PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'
    // The distro's instrumentations stay off: a dependency record per Graph or storage call would carry
    // mailbox addresses in its URL. shared/graph.py logs each Graph call (the workbook, the 429 alert).
    OTEL_PYTHON_DISABLED_INSTRUMENTATIONS: 'azure_sdk,django,fastapi,flask,httpx,httpx2,psycopg2,requests,urllib,urllib3'
    // DefaultAzureCredential in the code picks the user-assigned identity by this client id.
    AZURE_CLIENT_ID: identity.properties.clientId
    // The service's tables and queue; the queue trigger's connection "SERVICE_STORAGE" resolves to these.
    SERVICE_STORAGE__tableServiceUri: storage.outputs.tableEndpoint
    SERVICE_STORAGE__queueServiceUri: storage.outputs.queueEndpoint
    SERVICE_STORAGE__credential: 'managedidentity'
    SERVICE_STORAGE__clientId: identity.properties.clientId
    PUBLIC_BASE_URL: effectivePublicBaseUrl
    ALLOWED_RETURN_ORIGINS: allowedReturnOrigins
    APP_CLIENT_ID: appClientId
    // Callers: Entra ID tokens checked by the service itself (no function keys, no platform auth).
    HOME_TENANT_ID: homeTenantId
    API_AUDIENCE: apiAudience
    ALLOWED_CALLER_APP_IDS: allowedCallerAppIds
    APP_CREDENTIAL_TYPE: appCredentialType
    APP_SECRET_NAME: appSecretName
    APP_CERTIFICATE_NAME: appCertificateName
    KEY_VAULT_URL: keyVault.outputs.vaultUri
    IDENTITY_AUTHORITY_HOST: identityAuthorityHost
    GRAPH_BASE_URL: graphBaseUrl
    GRAPH_RESOURCE: graphResource
    STORAGE_TABLE_PREFIX: storageTablePrefix
    JOBS_QUEUE_NAME: jobsQueueName
    TOKEN_REFRESH_SCHEDULE: tokenRefreshSchedule
    BOOKING_RECONCILE_SCHEDULE: bookingReconcileSchedule
    REFRESH_JOBS_PER_SECOND: string(refreshJobsPerSecond)
    RECONCILE_HOURS: reconcileHours
    BOOKING_RETENTION_DAYS: string(bookingRetentionDays)
    WEBHOOK_URL: webhookUrl
    WEBHOOK_SECRET_NAME: webhookSecretName
    HTTP_TIMEOUT_SECONDS: string(httpTimeoutSeconds)
    GRAPH_WRITE_MARGIN_SECONDS: string(graphWriteMarginSeconds)
    LOG_LEVEL: logLevel
    APP_VERSION: appVersion
  }
  dependsOn: [
    functionApp
    monitoring
  ]
}

// ---------------------------------------------------------------------------------------------
// Outputs (names and URLs only; nothing secret)
// ---------------------------------------------------------------------------------------------

output functionAppName string = names.functionApp
output functionUrl string = 'https://${functionApp.outputs.defaultHostName}'
output publicBaseUrl string = effectivePublicBaseUrl
output consentRedirectUri string = '${effectivePublicBaseUrl}/api/consent/callback'
output keyVaultName string = keyVault.outputs.name
output keyVaultUri string = keyVault.outputs.vaultUri
output storageAccountName string = storage.outputs.name
output identityClientId string = identity.properties.clientId
output identityPrincipalId string = identity.properties.principalId
output homeTenantId string = homeTenantId
output apiAudience string = apiAudience
