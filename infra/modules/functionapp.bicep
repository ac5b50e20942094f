// The Flex Consumption plan and the Function App (Python 3.11, Linux) running as the environment's
// user-assigned identity. The app settings are set by main.bicep (sites/config 'appsettings'),
// next to the parameters they come from.
//
// Flex Consumption rules kept here (learn.microsoft.com/azure/azure-functions/flex-consumption-plan
// and functions-app-settings#flex-consumption-plan-deprecations): plan sku FC1 / FlexConsumption,
// Linux (reserved), kind 'functionapp,linux', the language in functionAppConfig.runtime (never
// FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION), the package in a blob container reached
// with the managed identity (functionAppConfig.deployment.storage), scale in scaleAndConcurrency.
// API version and shapes as in Azure-Samples/azure-functions-flex-consumption-samples,
// IaC/bicep/core/host/function.bicep (Microsoft.Web 2024-04-01).

@description('Name of the Function App.')
@maxLength(60)
param name string

@description('Name of the Flex Consumption plan (one app per plan).')
param planName string

@description('Region of the plan and the app.')
param location string

@description('Tags of the plan and the app.')
param tags object

@description('Resource ID of the user-assigned managed identity the app runs as.')
param identityId string

@description('URL of the blob container that holds the deployment package.')
param deploymentContainerUrl string

@description('Most instances the app scales out to.')
param maximumInstanceCount int

@description('Memory of one instance, in MB.')
param instanceMemoryMB int

@description('Always-ready instances of the HTTP functions (0: scale to zero).')
param alwaysReadyHttpInstances int

var alwaysReadyHttp = [
  {
    name: 'http'
    instanceCount: alwaysReadyHttpInstances
  }
]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        alwaysReady: alwaysReadyHttpInstances > 0 ? alwaysReadyHttp : []
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// No publishing user names and passwords: deploy.sh publishes with `az functionapp deployment
// source config-zip`, which on Flex Consumption posts to the app's /api/publish with the signed-in
// user's Entra ID token (azure-cli appservice custom.py, enable_zip_deploy_flex).
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
