"""The national document axis: edXML, the axis client, its sandbox and the adapter."""
