/*
 * The subset of the PKCS#11 v2.40 C interface (OASIS "PKCS #11 Cryptographic Token Interface
 * Base Specification Version 2.40", pkcs11t.h and pkcs11f.h) that the Trellis PKCS#11 RoT port
 * uses, written out because Debian packages no standalone Cryptoki header for OpenSSL users.
 *
 * Only the types, constants and structures Trellis needs are declared, except CK_FUNCTION_LIST:
 * a module hands back a pointer to its own table, so every one of the 68 entries is declared in
 * the exact order of pkcs11f.h (v2.40 §5.1, "C_GetFunctionList"), each with its real prototype,
 * even the ones Trellis never calls. On Unix the structures use the platform's natural packing
 * (Windows builds of Cryptoki pack to 1 byte; Trellis does not target Windows).
 *
 * Names keep the specification's CK_ spelling so they read like every other PKCS#11 program.
 */
#ifndef TRELLIS_DEVICE_PKCS11_MIN_H
#define TRELLIS_DEVICE_PKCS11_MIN_H

#include <stddef.h>

/* v2.40 §3.1: base types. CK_ULONG is at least 32 bits; on LP64 Unix it is unsigned long. */
typedef unsigned char CK_BYTE;
typedef CK_BYTE CK_CHAR;
typedef CK_BYTE CK_UTF8CHAR;
typedef CK_BYTE CK_BBOOL;
typedef unsigned long CK_ULONG;
typedef long CK_LONG;
typedef CK_ULONG CK_FLAGS;
typedef CK_BYTE *CK_BYTE_PTR;
typedef CK_CHAR *CK_CHAR_PTR;
typedef CK_UTF8CHAR *CK_UTF8CHAR_PTR;
typedef CK_ULONG *CK_ULONG_PTR;
typedef void *CK_VOID_PTR;
typedef CK_VOID_PTR *CK_VOID_PTR_PTR;

#define CK_FALSE 0
#define CK_TRUE  1

typedef struct CK_VERSION {
    CK_BYTE major;
    CK_BYTE minor;
} CK_VERSION;
typedef CK_VERSION *CK_VERSION_PTR;

typedef struct CK_INFO {
    CK_VERSION cryptokiVersion;
    CK_UTF8CHAR manufacturerID[32];
    CK_FLAGS flags;
    CK_UTF8CHAR libraryDescription[32];
    CK_VERSION libraryVersion;
} CK_INFO;
typedef CK_INFO *CK_INFO_PTR;

typedef CK_ULONG CK_NOTIFICATION;
typedef CK_ULONG CK_SLOT_ID;
typedef CK_SLOT_ID *CK_SLOT_ID_PTR;

typedef struct CK_SLOT_INFO {
    CK_UTF8CHAR slotDescription[64];
    CK_UTF8CHAR manufacturerID[32];
    CK_FLAGS flags;
    CK_VERSION hardwareVersion;
    CK_VERSION firmwareVersion;
} CK_SLOT_INFO;
typedef CK_SLOT_INFO *CK_SLOT_INFO_PTR;

#define CKF_TOKEN_PRESENT 0x00000001UL

typedef struct CK_TOKEN_INFO {
    CK_UTF8CHAR label[32];
    CK_UTF8CHAR manufacturerID[32];
    CK_UTF8CHAR model[16];
    CK_CHAR serialNumber[16];
    CK_FLAGS flags;
    CK_ULONG ulMaxSessionCount;
    CK_ULONG ulSessionCount;
    CK_ULONG ulMaxRwSessionCount;
    CK_ULONG ulRwSessionCount;
    CK_ULONG ulMaxPinLen;
    CK_ULONG ulMinPinLen;
    CK_ULONG ulTotalPublicMemory;
    CK_ULONG ulFreePublicMemory;
    CK_ULONG ulTotalPrivateMemory;
    CK_ULONG ulFreePrivateMemory;
    CK_VERSION hardwareVersion;
    CK_VERSION firmwareVersion;
    CK_CHAR utcTime[16];
} CK_TOKEN_INFO;
typedef CK_TOKEN_INFO *CK_TOKEN_INFO_PTR;

#define CKF_LOGIN_REQUIRED       0x00000004UL
#define CKF_USER_PIN_INITIALIZED 0x00000008UL
#define CKF_TOKEN_INITIALIZED    0x00000400UL

typedef CK_ULONG CK_SESSION_HANDLE;
typedef CK_SESSION_HANDLE *CK_SESSION_HANDLE_PTR;

#define CK_INVALID_HANDLE 0UL

typedef CK_ULONG CK_USER_TYPE;
#define CKU_SO   0UL
#define CKU_USER 1UL

typedef CK_ULONG CK_STATE;

typedef struct CK_SESSION_INFO {
    CK_SLOT_ID slotID;
    CK_STATE state;
    CK_FLAGS flags;
    CK_ULONG ulDeviceError;
} CK_SESSION_INFO;
typedef CK_SESSION_INFO *CK_SESSION_INFO_PTR;

#define CKF_RW_SESSION     0x00000002UL
#define CKF_SERIAL_SESSION 0x00000004UL

typedef CK_ULONG CK_OBJECT_HANDLE;
typedef CK_OBJECT_HANDLE *CK_OBJECT_HANDLE_PTR;

typedef CK_ULONG CK_OBJECT_CLASS;
#define CKO_DATA        0x00000000UL
#define CKO_PUBLIC_KEY  0x00000002UL
#define CKO_PRIVATE_KEY 0x00000003UL

typedef CK_ULONG CK_KEY_TYPE;
#define CKK_EC 0x00000003UL

typedef CK_ULONG CK_ATTRIBUTE_TYPE;
#define CKA_CLASS             0x00000000UL
#define CKA_TOKEN             0x00000001UL
#define CKA_PRIVATE           0x00000002UL
#define CKA_LABEL             0x00000003UL
#define CKA_VALUE             0x00000011UL
#define CKA_KEY_TYPE          0x00000100UL
#define CKA_ID                0x00000102UL
#define CKA_SENSITIVE         0x00000103UL
#define CKA_SIGN              0x00000108UL
#define CKA_VERIFY            0x0000010AUL
#define CKA_DERIVE            0x0000010CUL
#define CKA_EXTRACTABLE       0x00000162UL
#define CKA_NEVER_EXTRACTABLE 0x00000164UL
#define CKA_ALWAYS_SENSITIVE  0x00000165UL
#define CKA_MODIFIABLE        0x00000170UL
#define CKA_EC_PARAMS         0x00000180UL
#define CKA_EC_POINT          0x00000181UL

/* v2.40 §5.2: C_GetAttributeValue reports an unavailable attribute with this length. */
#define CK_UNAVAILABLE_INFORMATION (~0UL)

typedef struct CK_ATTRIBUTE {
    CK_ATTRIBUTE_TYPE type;
    CK_VOID_PTR pValue;
    CK_ULONG ulValueLen;
} CK_ATTRIBUTE;
typedef CK_ATTRIBUTE *CK_ATTRIBUTE_PTR;

typedef CK_ULONG CK_MECHANISM_TYPE;
typedef CK_MECHANISM_TYPE *CK_MECHANISM_TYPE_PTR;
#define CKM_EC_KEY_PAIR_GEN 0x00001040UL
#define CKM_ECDSA           0x00001041UL

typedef struct CK_MECHANISM {
    CK_MECHANISM_TYPE mechanism;
    CK_VOID_PTR pParameter;
    CK_ULONG ulParameterLen;
} CK_MECHANISM;
typedef CK_MECHANISM *CK_MECHANISM_PTR;

typedef struct CK_MECHANISM_INFO {
    CK_ULONG ulMinKeySize;
    CK_ULONG ulMaxKeySize;
    CK_FLAGS flags;
} CK_MECHANISM_INFO;
typedef CK_MECHANISM_INFO *CK_MECHANISM_INFO_PTR;

typedef CK_ULONG CK_RV;
#define CKR_OK                           0x00000000UL
#define CKR_HOST_MEMORY                  0x00000002UL
#define CKR_GENERAL_ERROR                0x00000005UL
#define CKR_FUNCTION_FAILED              0x00000006UL
#define CKR_ARGUMENTS_BAD                0x00000007UL
#define CKR_ATTRIBUTE_SENSITIVE          0x00000011UL
#define CKR_ATTRIBUTE_TYPE_INVALID       0x00000012UL
#define CKR_DEVICE_ERROR                 0x00000030UL
#define CKR_DEVICE_MEMORY                0x00000031UL
#define CKR_DEVICE_REMOVED               0x00000032UL
#define CKR_KEY_HANDLE_INVALID           0x00000060UL
#define CKR_KEY_FUNCTION_NOT_PERMITTED   0x00000068UL
#define CKR_KEY_UNEXTRACTABLE            0x0000006AUL
#define CKR_MECHANISM_INVALID            0x00000070UL
#define CKR_OBJECT_HANDLE_INVALID        0x00000082UL
#define CKR_PIN_INCORRECT                0x000000A0UL
#define CKR_PIN_INVALID                  0x000000A1UL
#define CKR_PIN_LEN_RANGE                0x000000A2UL
#define CKR_PIN_EXPIRED                  0x000000A3UL
#define CKR_PIN_LOCKED                   0x000000A4UL
#define CKR_SESSION_HANDLE_INVALID       0x000000B3UL
#define CKR_TEMPLATE_INCOMPLETE          0x000000D0UL
#define CKR_TEMPLATE_INCONSISTENT        0x000000D1UL
#define CKR_TOKEN_NOT_PRESENT            0x000000E0UL
#define CKR_TOKEN_NOT_RECOGNIZED         0x000000E1UL
#define CKR_USER_ALREADY_LOGGED_IN       0x00000100UL
#define CKR_USER_NOT_LOGGED_IN           0x00000101UL
#define CKR_USER_PIN_NOT_INITIALIZED     0x00000102UL
#define CKR_BUFFER_TOO_SMALL             0x00000150UL
#define CKR_CRYPTOKI_NOT_INITIALIZED     0x00000190UL
#define CKR_CRYPTOKI_ALREADY_INITIALIZED 0x00000191UL

typedef CK_RV (*CK_NOTIFY)(CK_SESSION_HANDLE hSession, CK_NOTIFICATION event,
                           CK_VOID_PTR pApplication);

typedef CK_RV (*CK_CREATEMUTEX)(CK_VOID_PTR_PTR ppMutex);
typedef CK_RV (*CK_DESTROYMUTEX)(CK_VOID_PTR pMutex);
typedef CK_RV (*CK_LOCKMUTEX)(CK_VOID_PTR pMutex);
typedef CK_RV (*CK_UNLOCKMUTEX)(CK_VOID_PTR pMutex);

typedef struct CK_C_INITIALIZE_ARGS {
    CK_CREATEMUTEX CreateMutex;
    CK_DESTROYMUTEX DestroyMutex;
    CK_LOCKMUTEX LockMutex;
    CK_UNLOCKMUTEX UnlockMutex;
    CK_FLAGS flags;
    CK_VOID_PTR pReserved;
} CK_C_INITIALIZE_ARGS;

#define CKF_OS_LOCKING_OK 0x00000002UL

struct CK_FUNCTION_LIST;
typedef struct CK_FUNCTION_LIST CK_FUNCTION_LIST;
typedef CK_FUNCTION_LIST *CK_FUNCTION_LIST_PTR;
typedef CK_FUNCTION_LIST_PTR *CK_FUNCTION_LIST_PTR_PTR;

typedef CK_RV (*CK_C_GetFunctionList)(CK_FUNCTION_LIST_PTR_PTR ppFunctionList);

/*
 * The function table, v2.40 §5.1 (order of pkcs11f.h). A wrong order or a missing entry would
 * make a call land in another function, so the static assertions below pin the offsets of the
 * entries Trellis calls.
 */
struct CK_FUNCTION_LIST {
    CK_VERSION version;
    CK_RV (*C_Initialize)(CK_VOID_PTR pInitArgs);
    CK_RV (*C_Finalize)(CK_VOID_PTR pReserved);
    CK_RV (*C_GetInfo)(CK_INFO_PTR pInfo);
    CK_RV (*C_GetFunctionList)(CK_FUNCTION_LIST_PTR_PTR ppFunctionList);
    CK_RV (*C_GetSlotList)(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount);
    CK_RV (*C_GetSlotInfo)(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo);
    CK_RV (*C_GetTokenInfo)(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo);
    CK_RV(*C_GetMechanismList)
    (CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList, CK_ULONG_PTR pulCount);
    CK_RV(*C_GetMechanismInfo)
    (CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR pInfo);
    CK_RV(*C_InitToken)
    (CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pLabel);
    CK_RV (*C_InitPIN)(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen);
    CK_RV(*C_SetPIN)
    (CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pOldPin, CK_ULONG ulOldLen,
     CK_UTF8CHAR_PTR pNewPin, CK_ULONG ulNewLen);
    CK_RV(*C_OpenSession)
    (CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication, CK_NOTIFY Notify,
     CK_SESSION_HANDLE_PTR phSession);
    CK_RV (*C_CloseSession)(CK_SESSION_HANDLE hSession);
    CK_RV (*C_CloseAllSessions)(CK_SLOT_ID slotID);
    CK_RV (*C_GetSessionInfo)(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo);
    CK_RV(*C_GetOperationState)
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pOperationState, CK_ULONG_PTR pulOperationStateLen);
    CK_RV(*C_SetOperationState)
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pOperationState, CK_ULONG ulOperationStateLen,
     CK_OBJECT_HANDLE hEncryptionKey, CK_OBJECT_HANDLE hAuthenticationKey);
    CK_RV(*C_Login)
    (CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen);
    CK_RV (*C_Logout)(CK_SESSION_HANDLE hSession);
    CK_RV(*C_CreateObject)
    (CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
     CK_OBJECT_HANDLE_PTR phObject);
    CK_RV(*C_CopyObject)
    (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate,
     CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phNewObject);
    CK_RV (*C_DestroyObject)(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject);
    CK_RV(*C_GetObjectSize)
    (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ULONG_PTR pulSize);
    CK_RV(*C_GetAttributeValue)
    (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate,
     CK_ULONG ulCount);
    CK_RV(*C_SetAttributeValue)
    (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate,
     CK_ULONG ulCount);
    CK_RV(*C_FindObjectsInit)
    (CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount);
    CK_RV(*C_FindObjects)
    (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject, CK_ULONG ulMaxObjectCount,
     CK_ULONG_PTR pulObjectCount);
    CK_RV (*C_FindObjectsFinal)(CK_SESSION_HANDLE hSession);
    CK_RV(*C_EncryptInit)
    (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey);
    CK_RV(*C_Encrypt)
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pEncryptedData,
     CK_ULONG_PTR pulEncryptedDataLen);
    CK_RV(*C_EncryptUpdate)
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart,
     CK_ULONG_PTR pulEncryptedPartLen);
    CK_RV(*C_EncryptFinal)
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastEncryptedPart,
     CK_ULONG_PTR pulLastEncryptedPartLen);
    CK_RV(*C_DecryptInit)
    (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey);
    CK_RV(*C_Decrypt)
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedData, CK_ULONG ulEncryptedDataLen,
     CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen);
    CK_RV(*C_DecryptUpdate)
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen,
     CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen);
    CK_RV(*C_DecryptFinal)
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastPart, CK_ULONG_PTR pulLastPartLen);
    CK_RV (*C_DigestInit)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism);
    CK_RV(*C_Digest)
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pDigest,
     CK_ULONG_PTR pulDigestLen);
    CK_RV (*C_DigestUpdate)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen);
    CK_RV (*C_DigestKey)(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hKey);
    CK_RV(*C_DigestFinal)
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen);
    CK_RV(*C_SignInit)
    (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey);
    CK_RV(*C_Sign)
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
     CK_ULONG_PTR pulSignatureLen);
    CK_RV (*C_SignUpdate)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen);
    CK_RV(*C_SignFinal)
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen);
    CK_RV(*C_SignRecoverInit)
    (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey);
    CK_RV(*C_SignRecover)
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
     CK_ULONG_PTR pulSignatureLen);
    CK_RV(*C_VerifyInit)
    (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey);
    CK_RV(*C_Verify)
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
     CK_ULONG ulSignatureLen);
    CK_RV (*C_VerifyUpdate)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen);
    CK_RV(*C_VerifyFinal)
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen);
    CK_RV(*C_VerifyRecoverInit)
    (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey);
    CK_RV(*C_VerifyRecover)
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen, CK_BYTE_PTR pData,
     CK_ULONG_PTR pulDataLen);
    CK_RV(*C_DigestEncryptUpdate)
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart,
     CK_ULONG_PTR pulEncryptedPartLen);
    CK_RV(*C_DecryptDigestUpdate)
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen,
     CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen);
    CK_RV(*C_SignEncryptUpdate)
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart,
     CK_ULONG_PTR pulEncryptedPartLen);
    CK_RV(*C_DecryptVerifyUpdate)
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen,
     CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen);
    CK_RV(*C_GenerateKey)
    (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_ATTRIBUTE_PTR pTemplate,
     CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phKey);
    CK_RV(*C_GenerateKeyPair)
    (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_ATTRIBUTE_PTR pPublicKeyTemplate,
     CK_ULONG ulPublicKeyAttributeCount, CK_ATTRIBUTE_PTR pPrivateKeyTemplate,
     CK_ULONG ulPrivateKeyAttributeCount, CK_OBJECT_HANDLE_PTR phPublicKey,
     CK_OBJECT_HANDLE_PTR phPrivateKey);
    CK_RV(*C_WrapKey)
    (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hWrappingKey,
     CK_OBJECT_HANDLE hKey, CK_BYTE_PTR pWrappedKey, CK_ULONG_PTR pulWrappedKeyLen);
    CK_RV(*C_UnwrapKey)
    (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hUnwrappingKey,
     CK_BYTE_PTR pWrappedKey, CK_ULONG ulWrappedKeyLen, CK_ATTRIBUTE_PTR pTemplate,
     CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey);
    CK_RV(*C_DeriveKey)
    (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hBaseKey,
     CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey);
    CK_RV (*C_SeedRandom)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSeed, CK_ULONG ulSeedLen);
    CK_RV(*C_GenerateRandom)
    (CK_SESSION_HANDLE hSession, CK_BYTE_PTR RandomData, CK_ULONG ulRandomLen);
    CK_RV (*C_GetFunctionStatus)(CK_SESSION_HANDLE hSession);
    CK_RV (*C_CancelFunction)(CK_SESSION_HANDLE hSession);
    CK_RV (*C_WaitForSlotEvent)(CK_FLAGS flags, CK_SLOT_ID_PTR pSlot, CK_VOID_PTR pRserved);
};

/* The table is the version followed by 68 function pointers; CK_VERSION (two bytes) is padded
 * to the alignment of a pointer. Entry n (0-based after the version) sits at
 * TR_CK_ENTRY_OFFSET(n). */
#define TR_CK_ENTRY_OFFSET(n) (sizeof(void *) * (1 + (n)))
_Static_assert(sizeof(CK_VERSION) == 2, "CK_VERSION is two bytes");
_Static_assert(sizeof(CK_FUNCTION_LIST) == TR_CK_ENTRY_OFFSET(68), "68 entries after version");
_Static_assert(offsetof(CK_FUNCTION_LIST, C_Initialize) == TR_CK_ENTRY_OFFSET(0), "C_Initialize");
_Static_assert(offsetof(CK_FUNCTION_LIST, C_GetSlotList) == TR_CK_ENTRY_OFFSET(4), "C_GetSlotList");
_Static_assert(offsetof(CK_FUNCTION_LIST, C_GetTokenInfo) == TR_CK_ENTRY_OFFSET(6),
               "C_GetTokenInfo");
_Static_assert(offsetof(CK_FUNCTION_LIST, C_InitToken) == TR_CK_ENTRY_OFFSET(9), "C_InitToken");
_Static_assert(offsetof(CK_FUNCTION_LIST, C_OpenSession) == TR_CK_ENTRY_OFFSET(12),
               "C_OpenSession");
_Static_assert(offsetof(CK_FUNCTION_LIST, C_Login) == TR_CK_ENTRY_OFFSET(18), "C_Login");
_Static_assert(offsetof(CK_FUNCTION_LIST, C_DestroyObject) == TR_CK_ENTRY_OFFSET(22),
               "C_DestroyObject");
_Static_assert(offsetof(CK_FUNCTION_LIST, C_GetAttributeValue) == TR_CK_ENTRY_OFFSET(24),
               "C_GetAttributeValue");
_Static_assert(offsetof(CK_FUNCTION_LIST, C_FindObjectsInit) == TR_CK_ENTRY_OFFSET(26),
               "C_FindObjectsInit");
_Static_assert(offsetof(CK_FUNCTION_LIST, C_SignInit) == TR_CK_ENTRY_OFFSET(42), "C_SignInit");
_Static_assert(offsetof(CK_FUNCTION_LIST, C_Sign) == TR_CK_ENTRY_OFFSET(43), "C_Sign");
_Static_assert(offsetof(CK_FUNCTION_LIST, C_GenerateKeyPair) == TR_CK_ENTRY_OFFSET(59),
               "C_GenerateKeyPair");
_Static_assert(offsetof(CK_FUNCTION_LIST, C_WaitForSlotEvent) == TR_CK_ENTRY_OFFSET(67),
               "C_WaitForSlotEvent is last");
_Static_assert(sizeof(CK_ATTRIBUTE) == 3 * sizeof(void *), "CK_ATTRIBUTE layout");

#endif /* TRELLIS_DEVICE_PKCS11_MIN_H */
