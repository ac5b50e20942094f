// The environment's Key Vault: the app registration's credential (written by an operator) and the
// members' refresh tokens (written, versioned, disabled and deleted by the service). Access is by
// Azure RBAC only (no access policies). Soft delete is always on for new vaults; purge protection
// makes a deleted secret name unusable until its retention ends, which is fine because the service
// never reuses a name (README, "Storage and secrets").

@description('Name of the vault (3-24 characters, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Region of the vault.')
param location string

@description('Tags of the vault.')
param tags object

@description('Days a deleted secret or vault stays recoverable (7-90); fixed at creation.')
param retentionDays int

@description('Log Analytics workspace that receives the vault\'s audit log.')
param workspaceId string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: retentionDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    // Flex Consumption without virtual network integration reaches the vault over its public
    // endpoint; every request still needs an Entra ID token and an RBAC role.
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// Who read or wrote which secret, kept with the app's logs.
resource auditLog 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-to-log-analytics'
  scope: vault
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

output name string = vault.name
output id string = vault.id
output vaultUri string = vault.properties.vaultUri
