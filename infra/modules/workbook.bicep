// The operations workbook (Azure Monitor, Workbooks): tenants by status, bookings per day,
// Microsoft Graph latency and throttling, queue depths, HTTP answers and the latest errors with
// their request, tenant and invocation ids. Its definition is infra/workbooks/operations.json;
// every query reads the workspace behind Application Insights, whose id replaces the
// __WORKSPACE_ID__ placeholder (the workbook's default resource when opened from the gallery).

@description('Resource ID of the Log Analytics workspace the workbook reads.')
param workspaceId string

@description('Region of the workbook.')
param location string

@description('Tags of the workbook.')
param tags object

@description('Name shown in the portal\'s workbook gallery.')
param displayName string

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // A workbook's name must be a GUID; this one is stable per resource group and display name.
  name: guid(resourceGroup().id, 'operations-workbook', displayName)
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: workspaceId
    serializedData: replace(loadTextContent('../workbooks/operations.json'), '__WORKSPACE_ID__', workspaceId)
  }
}

output workbookId string = workbook.id
